"""iommufd conformance (kernel-spec §4.4, §4.6, §5.1; scenarios U-01..U-04, O-05, O-11).

Each test is named after the scenario id; errnos are exact.
"""

from __future__ import annotations

import pytest

from pasidsim.config import Config, DeviceConfig, DriverConfig, IommuUnit
from pasidsim.errors import EBUSY, EINVAL, ENODEV, ENOENT, EPERM
from pasidsim.invariants import check_state, check_transition
from pasidsim.state import IOMMU_NO_PASID, DomainType, HandleKind
from pasidsim.step import Action, step
from pasidsim.system import System

from tests.helpers import do

MOCK_PASID_WIDTH = 20


@pytest.fixture
def fd():
    cfg = Config.build(
        iommus=[IommuUnit("mock", max_pasids=1 << 20), IommuUnit("other", ops="arm-smmu-v3")],
        devices=[DeviceConfig("a", iommu="mock", group="G", pasid_bits=MOCK_PASID_WIDTH),
                 DeviceConfig("b", iommu="mock", group="G", pasid_bits=MOCK_PASID_WIDTH),
                 DeviceConfig("mock_pasid", iommu="mock", pasid_bits=MOCK_PASID_WIDTH),
                 DeviceConfig("mock_nopasid", iommu="mock", pasid_bits=0),
                 DeviceConfig("kern", iommu="mock", pasid_bits=20),
                 DeviceConfig("arm", iommu="other", pasid_bits=20),
                 DeviceConfig("bare", iommu=None)],
        drivers=[DriverConfig("e1000e")])
    return System(cfg)


def setup_ctx(sys, *devs):
    ictx = do(sys, "iommufd_ctx_create")
    idevs = [do(sys, "iommufd_device_bind", ictx=ictx, dev=d) for d in devs]
    ioas = do(sys, "iommufd_ioas_alloc", ictx=ictx)
    return ictx, idevs, ioas


def hwpt(sys, ioas, dev, compat):
    return do(sys, "iommufd_hwpt_alloc", ioas=ioas, dev=dev, pasid_compat=compat)


def test_U01_pasid_compat(fd):
    _, (ia,), ioas = setup_ctx(fd, "mock_pasid")
    plain, compat = hwpt(fd, ioas, "mock_pasid", 0), hwpt(fd, ioas, "mock_pasid", 1)
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=0, pt_id=plain) == 0
    # PASID attach while the RID hwpt is not PASID-compatible
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=7, pt_id=compat) == -EINVAL
    # PASID attach of a non-compatible hwpt
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=7, pt_id=plain) == -EINVAL
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=0, pt_id=compat) == 0
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=7, pt_id=compat) == 0
    # RID replace with a non-compatible hwpt while a PASID is attached
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=0, pt_id=plain) == -EINVAL
    g = fd.group("mock_pasid")
    assert [(p, d) for p, d, _h in g.pasid_array] == [(0, compat), (7, compat)]
    assert g.domain == compat and fd.state.pasid_table[(2, 7)][0] == compat


def test_U01_rid_attach_of_plain_hwpt_with_pasids_attached(fd):
    _, (ia,), ioas = setup_ctx(fd, "mock_pasid")
    plain, compat = hwpt(fd, ioas, "mock_pasid", 0), hwpt(fd, ioas, "mock_pasid", 1)
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=3, pt_id=compat) == 0
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=0, pt_id=plain) == -EINVAL
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=0, pt_id=compat) == 0


def test_U02_group_attached_once_each_device_recorded(fd):
    _, (ia, ib), ioas = setup_ctx(fd, "a", "b")
    h1, h2 = hwpt(fd, ioas, "a", 1), hwpt(fd, ioas, "a", 1)
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=9, pt_id=h1) == 0
    # the group is programmed once, for every PASID-capable member
    assert fd.state.pasid_table[(0, 9)][0] == h1 and fd.state.pasid_table[(1, 9)][0] == h1
    # attach b@9 to a different hwpt: the group is attached to H1 there
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=9, pt_id=h2) == -EINVAL
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=9, pt_id=h1) == 0
    (_p, _d, hid), = fd.group("G").pasid_array
    h = fd.state.handles[hid]
    assert (h.kind, h.users, h.drvdata) == (HandleKind.IOMMUFD, 2, 0b11)
    # already recorded: -EBUSY (device_array checked first)
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=9, pt_id=h1) == -EBUSY
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=9, pt_id=h2) == -EBUSY
    # replace a@9 to H2: every device moves
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=9, pt_id=h2) == 0
    assert fd.state.pasid_table[(0, 9)][0] == h2 and fd.state.pasid_table[(1, 9)][0] == h2
    (_p, d, hid2), = fd.group("G").pasid_array
    assert d == h2 and fd.state.handles[hid2].users == 2 and hid not in fd.state.handles
    # detach: the group stays attached until its last device leaves
    assert do(fd, "iommufd_device_detach", idev=ia, pasid=9) == 0
    assert fd.group("G").pasid_array and (0, 9) in fd.state.pasid_table
    assert do(fd, "iommufd_device_detach", idev=ib, pasid=9) == 0
    assert fd.group("G").pasid_array == () and not fd.state.pasid_table
    assert not fd.state.handles


def test_U02_rid_group_attach(fd):
    _, (ia, ib), ioas = setup_ctx(fd, "a", "b")
    h1, h2 = hwpt(fd, ioas, "a", 1), hwpt(fd, ioas, "a", 1)
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=0, pt_id=h1) == 0
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=0, pt_id=h2) == -EINVAL
    assert do(fd, "iommufd_device_attach", idev=ib, pasid=0, pt_id=h1) == 0
    assert fd.group("G").domain == h1
    assert do(fd, "iommufd_device_replace", idev=ib, pasid=0, pt_id=h2) == 0
    assert fd.group("G").domain == h2
    do(fd, "iommufd_device_detach", idev=ia, pasid=0)
    assert fd.group("G").domain == h2
    do(fd, "iommufd_device_detach", idev=ib, pasid=0)
    g = fd.group("G")
    assert g.domain == g.blocking_domain and g.pasid_array == ()


def test_U03_replace_unattached(fd):
    _, (ia, ib), ioas = setup_ctx(fd, "a", "b")
    h1, h2 = hwpt(fd, ioas, "a", 1), hwpt(fd, ioas, "a", 1)
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=4, pt_id=h1) == -EINVAL
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=0, pt_id=h1) == -EINVAL
    do(fd, "iommufd_device_attach", idev=ia, pasid=4, pt_id=h1)
    # attached for the group, but not for this device
    assert do(fd, "iommufd_device_replace", idev=ib, pasid=4, pt_id=h2) == -EINVAL
    assert do(fd, "iommufd_device_replace", idev=ia, pasid=4, pt_id=h1) == 0  # same: no-op


def test_U04_mock_width(fd):
    assert fd.config.max_pasids[fd.config.device_index("mock_pasid")] == 1 << MOCK_PASID_WIDTH
    assert fd.config.max_pasids[fd.config.device_index("mock_nopasid")] == 0
    _, (ip, inp), ioas = setup_ctx(fd, "mock_pasid", "mock_nopasid")
    hp, hn = hwpt(fd, ioas, "mock_pasid", 1), hwpt(fd, ioas, "mock_nopasid", 1)
    assert do(fd, "iommufd_device_attach", idev=ip, pasid=1 << 20, pt_id=hp) == -EINVAL
    assert do(fd, "iommufd_device_attach", idev=ip, pasid=(1 << 20) - 1, pt_id=hp) == 0
    assert do(fd, "iommufd_device_attach", idev=inp, pasid=1, pt_id=hn) == -EINVAL
    assert do(fd, "iommufd_device_attach", idev=inp, pasid=IOMMU_NO_PASID, pt_id=hn) == 0


def test_bind_errors_and_shared_ownership_O05(fd):
    fd.device_driver_attach("kern", "e1000e")
    ictx, ictx2 = do(fd, "iommufd_ctx_create"), do(fd, "iommufd_ctx_create")
    assert do(fd, "iommufd_device_bind", ictx=ictx, dev="bare") == -ENODEV
    assert do(fd, "iommufd_device_bind", ictx=ictx, dev="kern") == -EPERM
    assert do(fd, "iommufd_device_bind", ictx=0, dev="a") == -EINVAL
    ia = do(fd, "iommufd_device_bind", ictx=ictx, dev="a")
    ib = do(fd, "iommufd_device_bind", ictx=ictx, dev="b")
    g = fd.group("G")
    assert (g.owner, g.owner_cnt) == (ictx, 2)
    assert fd.state.domains[g.domain].type == DomainType.BLOCKED
    assert do(fd, "iommufd_device_bind", ictx=ictx2, dev="a") == -EPERM
    assert do(fd, "iommufd_device_unbind", idev=ib) == 0
    assert fd.group("G").owner_cnt == 1
    assert do(fd, "iommufd_device_unbind", idev=ia) == 0
    g = fd.group("G")
    assert (g.owner, g.owner_cnt, g.domain) == (0, 0, g.default_domain)
    assert do(fd, "iommufd_device_unbind", idev=ia) == -ENOENT
    assert not fd.state.files


def test_unbind_while_attached_O11(fd):
    _, (ia,), ioas = setup_ctx(fd, "mock_pasid")
    h = hwpt(fd, ioas, "mock_pasid", 1)
    do(fd, "iommufd_device_attach", idev=ia, pasid=5, pt_id=h)
    assert do(fd, "iommufd_device_unbind", idev=ia) == -EBUSY
    assert do(fd, "iommufd_hwpt_destroy", pt_id=h) == -EBUSY
    do(fd, "iommufd_device_detach", idev=ia, pasid=5)
    assert do(fd, "iommufd_device_unbind", idev=ia) == 0
    assert do(fd, "iommufd_hwpt_destroy", pt_id=h) == 0
    assert do(fd, "iommufd_hwpt_destroy", pt_id=h) == -ENOENT


def test_attach_lookup_errors(fd):
    _, (ia,), ioas = setup_ctx(fd, "mock_pasid")
    h = hwpt(fd, ioas, "mock_pasid", 1)
    assert do(fd, "iommufd_device_attach", idev=99999, pasid=1, pt_id=h) == -ENOENT
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=99999) == -ENOENT
    # a kernel domain is no object of the context: iommufd_get_object() fails -ENOENT
    default = fd.group("mock_pasid").default_domain
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=default) == -ENOENT
    arm = hwpt(fd, ioas, "arm", 1)  # another IOMMU driver's domain
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=arm) == -EINVAL
    assert do(fd, "iommufd_hwpt_alloc", ioas=0, dev="a", pasid_compat=1) == -EINVAL
    assert do(fd, "iommufd_hwpt_alloc", ioas=ioas, dev="bare", pasid_compat=1) == -ENODEV
    assert do(fd, "iommufd_device_detach", idev=ia, pasid=8) == 0  # not attached: no-op


def test_S07_sva_bind_collides_with_an_iommufd_pasid(fd):
    # iommufd attached a hwpt at PASID 1 of the group; a bind whose mm gets PASID 1 -> -EBUSY
    _, (ia,), ioas = setup_ctx(fd, "mock_pasid")
    hw = hwpt(fd, ioas, "mock_pasid", 1)
    assert do(fd, "iommufd_device_attach", idev=ia, pasid=1, pt_id=hw) == 0
    p = fd.process_create()
    mm = fd.mm_of(p)
    assert fd.apply(Action.of("iommu_sva_bind_device", dev=2, mm=mm)) == -EBUSY
    assert fd.mm(mm).pasid == 1  # the PASID stays with the mm (kernel-spec M-06)
    (_p, d, hid), = fd.group("mock_pasid").pasid_array
    assert d == hw and fd.state.handles[hid].kind == HandleKind.IOMMUFD


def test_group_handle_api(fd):
    from pasidsim.iommufd import (iommu_attach_group_handle, iommu_detach_group_handle,
                                  iommu_replace_group_handle)
    from pasidsim.state import Handle
    fd.device_driver_attach("kern", "e1000e")
    s = fd.state
    g = fd.config.group_index("kern")
    s, dom = step(s, Action.of("iommu_domain_alloc_paging", dev=4))
    s = s._replace(handles=s.handles.set(500, Handle(HandleKind.IOMMUFD, 0, 4, g, 0)),
                   next_id=max(s.next_id, 501))
    assert iommu_attach_group_handle(s, dom, g, 0)[1] == -EINVAL
    s2, ret = iommu_attach_group_handle(s, dom, g, 500)
    assert ret == 0 and s2.groups[g].domain == dom and s2.groups[g].pasid_array == ((0, dom, 500),)
    assert iommu_attach_group_handle(s2, dom, g, 500)[1] == -EBUSY  # RID slot in use
    s3, dom2 = step(s2, Action.of("iommu_domain_alloc_paging", dev=4))
    s3 = s3._replace(handles=s3.handles.set(501, Handle(HandleKind.IOMMUFD, 0, 4, g, 0)))
    s4, ret = iommu_replace_group_handle(s3, dom2, g, 501)
    assert ret == 0 and s4.groups[g].pasid_array == ((0, dom2, 501),) and 500 not in s4.handles
    assert iommu_replace_group_handle(s3, 0, g, 501)[1] == -EINVAL
    s5 = iommu_detach_group_handle(s4, dom2, g)
    assert s5.groups[g].pasid_array == () and s5.groups[g].domain == s5.groups[g].default_domain
