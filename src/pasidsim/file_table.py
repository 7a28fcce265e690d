"""``struct file`` references: ``get_file``, ``fput`` and the deferred ``__fput``.

``fput()`` drops a reference; the last one queues ``__fput`` as task work
(:class:`~pasidsim.state.Work` FPUT) rather than running it: the driver's ``release`` runs
later, when the current system call or exit finishes.  ``__fput`` reaches the driver through
the ops table (:data:`pasidsim.ops_tables.DRIVER_OPS`); a device whose driver was unbound
since the open gets no callback (its ``remove`` already tore the file's state down).

Kernel sources modeled: fs/file_table.c ``fput()``, ``____fput()``/``__fput()``
(``file->f_op->release``), include/linux/fs.h ``get_file()``.
"""

from __future__ import annotations

from .ops_tables import dev_driver_ops
from .state import SystemState, Work, queue_work


def get_file(s: SystemState, file: int) -> SystemState:
    """``get_file()``: f_count + 1."""
    f = s.files[file]
    return s._replace(files=s.files.set(file, f._replace(f_count=f.f_count + 1)))


def fput(s: SystemState, file: int) -> SystemState:
    """``fput()``: f_count - 1; the last reference queues ``__fput`` as task work."""
    f = s.files[file]
    if f.f_count > 1:
        return s._replace(files=s.files.set(file, f._replace(f_count=f.f_count - 1)))
    s = s._replace(files=s.files.set(file, f._replace(f_count=0)))
    return queue_work(s, Work.FPUT, file)


def __fput(s: SystemState, file: int) -> SystemState:
    """``__fput()`` (task work): the bound driver's ``release``, then the file is freed."""
    ops = dev_driver_ops(s, s.files[file].dev)
    if ops is not None:
        s = ops.release(s, file)
    return s._replace(files=s.files.delete(file))


__all__ = ["get_file", "fput"]
