"""Machines: the built-in default machine and machine specifications.

:func:`default_config` is the embedded two-socket server of ``pasidsim/data/default_machine.yaml``
(per-socket DSA and IAA accelerators behind their own VT-d units, a catch-all unit with a GPU, a
NIC and a two-function PCH group).  :func:`load_machine` accepts ``"default"``, a machine YAML
file (the same format: ``iommus``, ``devices``, ``drivers``, ``deferred_groups``), topology dumps
(``lspci -vvv``, IOMMU-group listings, dmesg, a sysfs root; see :mod:`pasidsim.topology`) or an
already validated :class:`~pasidsim.scenario.schema.InlineMachine`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag, field_validator, \
    model_validator
from pydantic_core import PydanticCustomError

from .config import Config, DeviceConfig, DriverConfig, IommuUnit
from .errors import ModelUsageError

# -- machine specifications (the ``machine:`` field of scenarios and machine YAML files) ------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Text = Annotated[str, Strict(), Field(max_length=20000)]


class IommuSpec(_Strict):
    """An IOMMU unit (:class:`pasidsim.config.IommuUnit`)."""

    name: Annotated[str, Strict(), Field(min_length=1)]
    ops: Literal["intel-iommu", "amd-iommu", "arm-smmu-v3"] = "intel-iommu"
    max_pasids: Annotated[int, Strict(), Field(ge=0, le=1 << 20)] = 1 << 20
    sva: Annotated[bool, Strict()] = True
    pasid_ops: Annotated[bool, Strict()] = True
    iotlb_entries: Annotated[int, Strict(), Field(ge=1, le=1 << 20)] = 1024
    iopf_requires_pri: Annotated[bool, Strict()] = Field(
        False, description="attaching an SVA domain (or an iommufd hwpt with a fault object) "
        "needs ATS and PRI on the device, else -ENODEV (VT-d since v6.16)")
    release_takes_sva_lock: Annotated[bool, Strict()] = Field(
        False, description="the driver's mmu-notifier release takes the lock its SVA unbind "
        "path holds (arm-smmu-v3's sva_lock, 5.18-6.8; modelled as iommu_sva_lock)")


class DeviceSpec(_Strict):
    """A device (:class:`pasidsim.config.DeviceConfig`); ``bdf``/``ids`` are informational."""

    name: Annotated[str, Strict(), Field(min_length=1)]
    iommu: Optional[str] = "iommu0"
    group: Optional[str] = None
    pasid_bits: Annotated[int, Strict(), Field(ge=0, le=20)] = 0
    pasid_cap: Optional[Annotated[bool, Strict()]] = Field(
        None, description="the device has a PCI PASID capability (default: pasid_bits > 0); "
        "true with pasid_bits 0 is a capability of width 0: one PASID (PASID 0), so every "
        "PASID attach to its group fails -EINVAL")
    pasid_features: Annotated[int, Strict(), Field(ge=0, le=6)] = Field(
        0, description="PASID capability features: 2 = EXEC, 4 = PRIV (what pci_enable_pasid "
        "may enable)")
    physfn: Optional[str] = Field(
        None, description="a virtual function's physical function: the VF uses its PF's "
        "PASID capability")
    acs_path: Annotated[bool, Strict()] = Field(
        True, description="ACS RR and UF enabled on the path to the root (pci_enable_pasid "
        "needs it)")
    eetlp_prefix: Annotated[bool, Strict()] = Field(
        True, description="End-End TLP prefixes supported on the path (they carry the PASID)")
    ats: Annotated[bool, Strict()] = False
    pri: Annotated[bool, Strict()] = False
    require_direct: Annotated[bool, Strict()] = False
    driver: Optional[str] = None
    atc_entries: Annotated[int, Strict(), Field(ge=1, le=1 << 20)] = 64
    bdf: Optional[str] = None
    ids: Optional[str] = Field(None, description="PCI vendor:device, e.g. 8086:0b25")


class DriverSpec(_Strict):
    """A driver (:class:`pasidsim.config.DriverConfig`); ``kind`` names a plug-in."""

    name: Annotated[str, Strict(), Field(min_length=1)]
    kind: str = "dma-api"
    driver_managed_dma: Annotated[bool, Strict()] = False
    mm_exit_drains: Annotated[bool, Strict()] = Field(
        True, description="E0 only: the driver's mm_exit callback waits for the device's "
        "queued work on the PASID (false: it returns at once, queued descriptors complete "
        "later)")
    uacce_sva: Annotated[bool, Strict()] = Field(
        True, description="uacce only: registered with UACCE_DEV_SVA (queues bound to the "
        "opener's mm); false: queues without a PASID")
    system_pasid: Annotated[bool, Strict()] = Field(
        False, description="idxd only: the probe takes a global PASID for kernel work queues "
        "and attaches the device's DMA-API domain at it (idxd_enable_system_pasid; the kernel "
        "does so by default)")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from .drivers import BUILTIN, REGISTRY
        known = {d.kind for d in BUILTIN} | set(REGISTRY)
        if v not in known:
            raise ValueError(f"unknown driver kind {v!r}; known: {', '.join(sorted(known))}")
        return v


def _dup(items, what: str, base: tuple) -> None:
    seen: set[str] = set()
    for i, it in enumerate(items):
        if it.name in seen:
            raise PydanticCustomError("duplicate", "duplicate {what} name {name}",
                                      {"what": what, "name": repr(it.name),
                                       "at": base + (i, "name")})
        seen.add(it.name)


class InlineMachine(_Strict):
    """A machine written out: units, devices (with their boot-time drivers), drivers."""

    name: Optional[str] = None
    description: Optional[Text] = None
    iommus: list[IommuSpec] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(default_factory=list)
    drivers: list[DriverSpec] = Field(default_factory=list)
    deferred_groups: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _refs(self):
        _dup(self.iommus, "iommu", ("iommus",))
        _dup(self.devices, "device", ("devices",))
        _dup(self.drivers, "driver", ("drivers",))
        units = {u.name for u in self.iommus}
        drivers = {d.name for d in self.drivers}
        for i, d in enumerate(self.devices):
            if d.iommu is not None and d.iommu not in units:
                raise PydanticCustomError("unknown", "unknown iommu {name}", {
                    "name": repr(d.iommu), "at": ("devices", i, "iommu")})
            if d.driver is not None and d.driver not in drivers:
                raise PydanticCustomError("unknown", "unknown driver {name}", {
                    "name": repr(d.driver), "at": ("devices", i, "driver")})
        return self


class TopologyMachine(_Strict):
    """A machine imported from dumps (``lspci -vvv``, IOMMU-group listings, dmesg, a sysfs
    root), relative to the scenario file.  ``select`` gives short names to devices
    (``{dsa0: "0000:6a:01.0"}``); ``drivers`` adds drivers the dump does not name."""

    topology: Union[str, list[str]]
    select: dict[str, str] = Field(default_factory=dict)
    drivers: list[DriverSpec] = Field(default_factory=list)
    ungrouped: Literal["singleton", "no-iommu"] = "singleton"


def _machine_key(v: Any) -> str:
    if isinstance(v, str):
        return "name"
    return "topology" if isinstance(v, dict) and "topology" in v else "inline"


MachineSpec = Annotated[Union[
    Annotated[Annotated[str, Strict(), Field(min_length=1)], Tag("name")],
    Annotated[TopologyMachine, Tag("topology")], Annotated[InlineMachine, Tag("inline")]],
    Discriminator(_machine_key)]


def config_from_spec(spec) -> Config:
    """Build a :class:`Config` from an :class:`~pasidsim.scenario.schema.InlineMachine`.

    Raises: ModelUsageError when ``Config.build`` rejects it (e.g. a group spanning two units).
    """
    return Config.build(
        iommus=[IommuUnit(u.name, ops=u.ops, max_pasids=u.max_pasids, sva=u.sva,
                          pasid_ops=u.pasid_ops, iotlb_entries=u.iotlb_entries,
                          release_takes_sva_lock=u.release_takes_sva_lock,
                          iopf_requires_pri=u.iopf_requires_pri)
                for u in spec.iommus],
        devices=[DeviceConfig(d.name, iommu=d.iommu, group=d.group, pasid_bits=d.pasid_bits,
                              pasid_cap=d.pasid_cap, pasid_features=d.pasid_features,
                              physfn=d.physfn, acs_path=d.acs_path,
                              eetlp_prefix=d.eetlp_prefix, ats=d.ats, pri=d.pri, require_direct=d.require_direct,
                              driver=d.driver, atc_entries=d.atc_entries) for d in spec.devices],
        drivers=[DriverConfig(d.name, driver_managed_dma=d.driver_managed_dma, kind=d.kind,
                              mm_exit_drains=d.mm_exit_drains, uacce_sva=d.uacce_sva,
                              system_pasid=d.system_pasid)
                 for d in spec.drivers],
        deferred_groups=spec.deferred_groups)


def load_machine_yaml(path: str | Path, text: str | None = None) -> Config:
    """A machine YAML file → Config.  Raises :class:`~pasidsim.scenario.loader.ScenarioError`
    (``file:line: field: message``) for bad YAML or an invalid machine."""
    from pydantic import ValidationError
    from .scenario.loader import Locator, ScenarioError, parse_yaml
    source = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: a NUL in the path
            raise ScenarioError(source, 0, "", f"cannot read: {e}") from None
    data, lines = parse_yaml(text, source)
    loc = Locator(source, lines)
    try:
        spec = InlineMachine.model_validate(data)
    except ValidationError as e:
        from .scenario.loader import _friendly
        err = e.errors(include_url=False)[0]
        at = (err.get("ctx") or {}).get("at")
        raise loc.error(tuple(err["loc"]) + (at if isinstance(at, tuple) else ()),
                        _friendly(err)) from None
    try:
        return config_from_spec(spec)
    except ModelUsageError as e:
        raise ScenarioError(source, 1, "", str(e)) from None


@lru_cache(maxsize=1)
def default_config() -> Config:
    """The built-in default machine (``pasidsim/data/default_machine.yaml``)."""
    text = resources.files("pasidsim").joinpath("data/default_machine.yaml").read_text("utf-8")
    return load_machine_yaml("default_machine.yaml", text)


def load_machine(spec) -> Config:
    """A machine from ``spec``:

    - ``"default"`` (or None): :func:`default_config`;
    - a path to a ``.yaml``/``.yml`` machine file: :func:`load_machine_yaml`;
    - a path (or list of paths) to topology dumps or a sysfs root: imported with
      :func:`pasidsim.topology.load_topology` and :func:`pasidsim.topology.convert.to_config`;
    - an :class:`~pasidsim.scenario.schema.InlineMachine`: :func:`config_from_spec`.

    Raises: ScenarioError (machine YAML), ``pasidsim.topology.TopologyError`` (dumps),
    ModelUsageError (inconsistent machine).
    """
    if spec is None or spec == "default":
        return default_config()
    if hasattr(spec, "iommus") and hasattr(spec, "devices"):
        return config_from_spec(spec)
    paths = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if len(paths) == 1 and str(paths[0]).endswith((".yaml", ".yml")):
        return load_machine_yaml(paths[0])
    from .topology import load_topology
    from .topology.convert import to_config
    return to_config(load_topology(paths))


def machine_config(spec, base_dir: Path | None = None) -> tuple[Config, dict[str, str]]:
    """The machine of a scenario's ``machine:`` field, and its device aliases.

    Args:
        spec: ``"default"``, a machine YAML path, an ``InlineMachine`` or a ``TopologyMachine``
            (see :mod:`pasidsim.scenario.schema`).
        base_dir: directory relative paths are taken from (the scenario file's).
    Returns: ``(config, aliases)``; aliases map a ``select`` short name to a device name.
    Raises: ScenarioError, ``pasidsim.topology.TopologyError``, ModelUsageError (with an
        ``at`` attribute: the offending path inside ``machine``).
    """
    def rel(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or base_dir is None else base_dir / q

    if isinstance(spec, str):
        return (default_config() if spec == "default" else load_machine_yaml(rel(spec))), {}
    if not hasattr(spec, "topology"):
        return config_from_spec(spec), {}
    from .topology import load_topology
    from .topology.convert import to_config
    from .topology.model import normalize_bdf
    paths = [spec.topology] if isinstance(spec.topology, str) else spec.topology
    cfg = with_drivers(to_config(load_topology([rel(p) for p in paths]),
                                 ungrouped=spec.ungrouped), spec.drivers)
    names = {d.name for d in cfg.devices}
    aliases = {}
    for alias, dev in spec.select.items():
        full = dev if dev in names else (normalize_bdf(dev) or dev)
        if full not in names:
            err = ModelUsageError(f"select: device {dev!r} is not in the topology")
            err.at = ("select", alias)  # type: ignore[attr-defined]
            raise err
        aliases[alias] = full
    return cfg, aliases


def with_drivers(cfg: Config, drivers) -> Config:
    """``cfg`` with extra drivers (:class:`DriverConfig`, or specs with name/kind/
    driver_managed_dma/mm_exit_drains); drivers already present by name are kept as they are."""
    have = {d.name for d in cfg.drivers}
    extra = [d if isinstance(d, DriverConfig) else
             DriverConfig(d.name, driver_managed_dma=d.driver_managed_dma, kind=d.kind,
                          mm_exit_drains=d.mm_exit_drains, uacce_sva=d.uacce_sva,
                              system_pasid=d.system_pasid)
             for d in drivers if d.name not in have]
    if not extra:
        return cfg
    deferred = [g.name for g in cfg.groups if g.deferred]
    return Config.build(iommus=cfg.iommus, devices=cfg.devices, drivers=cfg.drivers + tuple(extra),
                        deferred_groups=deferred)


__all__ = ["IommuSpec", "DeviceSpec", "DriverSpec", "InlineMachine", "TopologyMachine",
           "MachineSpec", "default_config", "load_machine", "machine_config", "load_machine_yaml", "config_from_spec",
           "with_drivers"]
