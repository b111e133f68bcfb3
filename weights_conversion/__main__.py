"""``python -m weights_conversion FORMAT SRC.pth DEST_DIR``."""

from weights_conversion.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
