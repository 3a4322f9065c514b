"""A triage dump cut short opens with WinDbg's truncation warning and keeps what it has."""

import pytest

import bugcheck
from bugcheck.dumpfile.dump import TRUNCATED_WARNING
from corpus import dump


@pytest.mark.parametrize("keep", [20_000, 60_000, 300_000])
def test_cut_triage_dump_opens_with_warning(tmp_path, keep):
    src = dump("rizin-triage_x64.dmp").read_bytes()
    cut = tmp_path / "cut.dmp"
    cut.write_bytes(src[:keep])
    d = bugcheck.open(cut).file
    assert TRUNCATED_WARNING in d.warnings
    assert d.bugcheck_code == 0x1000007E
    # the PRCB's context (KeBugCheckEx) when its copy survived the cut, else the header's own
    # context record (the faulting instruction in amdppm, the bugcheck's Arg2)
    assert d.crash_context.regs["rip"] in (0xFFFFF8047BDF5A80, d.bugcheck_parameters[1])
    full = bugcheck.open(dump("rizin-triage_x64.dmp")).file
    # every driver entry kept is identical to the whole file's
    assert d.triage.drivers == full.triage.drivers[: len(d.triage.drivers)]
    if keep < 0x10828:
        assert not d.triage.drivers and any("driver list" in w for w in d.warnings)
