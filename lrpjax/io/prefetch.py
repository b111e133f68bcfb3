"""The one background prefetcher: an iterator run in a thread, a bounded number of items ahead.

The data pipeline (:func:`lrpjax.data.prefetch_to_device`) and the explain job both use it; memory stays
flat whatever the number of items, and an error in the producer is raised in the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any


def prefetch(iterator: Iterable[Any], size: int = 2) -> Iterator[Any]:
    """Run ``iterator`` in a background thread, ``size`` items ahead; its exceptions are raised here.

    Closing the returned generator (or leaving a loop over it) stops the thread and waits for it, so nothing
    the thread uses (a thread pool, an open file) is torn down under it.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as error:  # handed to the consumer
            put((done, error))

    thread = threading.Thread(target=produce, name="lrpjax-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = items.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join()
