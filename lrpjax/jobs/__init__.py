"""The jobs built on the core: the resumable explain job and its store, training, the Zennit cross-check, the demo,
the gallery, and the ``lrpjax`` command line; one progress display for all of them."""
