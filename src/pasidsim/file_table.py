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

from .locking import Call, Do, KFunc
from .ops_tables import file_driver_ops
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


def vma_close(s: SystemState, file: int, pgoff: int) -> SystemState:
    """``vma->vm_ops->close`` of a mapping of ``file`` at page offset ``pgoff`` (munmap,
    exit_mmap): the file's driver's ``vma_close`` when it has one (uacce forgets the region,
    ``uacce_vma_close``), before the mapping's file reference is put.  Models mm/mmap.c
    ``remove_vma()``."""
    ops = file_driver_ops(s, file)
    close = getattr(ops, "vma_close", None)
    return close(s, file, pgoff) if close is not None else s


def _release_of(s: SystemState, loc: tuple):
    """``file->f_op->release`` of file ``loc[1]``: the driver's :class:`KFunc` release when
    it has one (``Driver.release_code``), else its plain ``release`` (returns 0)."""
    ops = file_driver_ops(s, loc[1])
    code = getattr(ops, "release_code", None)
    if code is not None:
        return code
    return lambda s, file: (ops.release(s, file), 0)


def _has_release(s: SystemState, loc: tuple):
    return (loc[1],) if file_driver_ops(s, loc[1]) is not None else None


def _free_file(s: SystemState, loc: tuple) -> tuple[SystemState, tuple]:
    return s._replace(files=s.files.delete(loc[1])), loc


#: ``__fput()`` with the driver's release as a call (its preemption points are the
#: driver's): run as task work, one preemption point at a time at lock granularity.
FPUT = KFunc("__fput", ("file",), (Call(("resolve", _release_of), _has_release),
                                    Do(_free_file)),
             "``__fput()`` of ``file`` (task work): the bound driver's ``release`` (a KFunc "
             "with its own preemption points, or one atomic section), then the file is freed. "
             "Returns 0.  Models: fs/file_table.c ``__fput()``.")


def __fput(s: SystemState, file: int) -> SystemState:
    """``__fput()`` (task work): the bound driver's ``release``, then the file is freed."""
    s, _ = FPUT(s, file)
    return s


__fput.kfunc = FPUT  # type: ignore[attr-defined]


__all__ = ["get_file", "fput", "vma_close"]
