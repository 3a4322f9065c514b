"""A writer-made kernel bitmap dump with known processes, threads, modules and processors.

The kernel is laid out with the real 19041 types of an ISF table; reading it
back through ``bugcheck.open`` + :class:`Target` must identify that same table
by the header's RVAs and give back exactly what was built.
"""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.dumpfile.synth import build_kernel, write_kernel_dump
from bugcheck.kernel.objects import THREAD_STATES, WAIT_REASONS
from bugcheck.kernel.target import Target
from corpus import corpus_file

TABLE = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")


@pytest.fixture(scope="module")
def table():
    from bugcheck.symbols.isf import load_isf

    return load_isf(corpus_file(*TABLE))


@pytest.fixture(scope="module")
def symbols_dir():
    return str(corpus_file("symbols", "isf"))


@pytest.fixture(scope="module")
def built(table, tmp_path_factory):
    kernel = build_kernel(table, processes=12, threads_per_process=3, processors=4, crash_processor=2)
    path = tmp_path_factory.mktemp("synth") / "kernel12.dmp"
    write_kernel_dump(kernel, path, "kernel_bitmap")
    return kernel, path


@pytest.fixture(scope="module")
def target(built, symbols_dir):
    _, path = built
    return Target(bugcheck.open(path), offline=True, symbols_dir=symbols_dir)


def test_header_and_table_identification(built, target):
    kernel, _ = built
    d = target.dump
    assert d.kind.name == "KERNEL_BITMAP"
    assert d.header.ps_loaded_module_list == kernel.symbols["PsLoadedModuleList"]
    assert d.kd_debugger_data["KernBase"] == kernel.kernel_base
    assert d.kd_debugger_data["KiProcessorBlock"] == kernel.symbols["KiProcessorBlock"]
    # No kernel PDB in the dump: the table is found by the three global RVAs.
    assert target.kernel_table_reason is not None
    assert "5278AFF86C341677D7D7835C85B7B844" in target.kernel_table_reason
    assert target.resolver.load(target.modules[0]).state == "symbol table"


def test_module_list_from_ps_loaded_module_list(built, target):
    kernel, _ = built
    assert target.module_list.source == "PsLoadedModuleList"
    got = [(m.image_name.lower(), m.base, m.size, m.timestamp, m.checksum) for m in target.modules]
    want = [(m.name.lower(), m.base, m.size, m.timestamp, m.checksum) for m in kernel.modules]
    assert got == want
    assert target.modules[0].name == "nt"


def test_processors_and_contexts(built, target):
    kernel, _ = built
    d = target.dump
    assert d.crash_processor == kernel.crash_processor == 2
    assert [c.pc for c in d.contexts] == [p.context["rip"] for p in kernel.processors]
    assert [c.sp for c in d.contexts] == [p.context["rsp"] for p in kernel.processors]
    procs = target.kernel.processors()
    assert [(p.prcb, p.current_thread, p.idle_thread) for p in procs] == [
        (p.prcb, p.current_thread, p.idle_thread) for p in kernel.processors
    ]
    crash_thread = target.kernel.current_thread()
    assert crash_thread.address == kernel.processes[-1].threads[0].address
    assert crash_thread.state_name == "RUNNING"
    assert target.kernel.current_process().pid == kernel.processes[-1].pid


def test_process_list_matches_description(built, target):
    kernel, _ = built
    procs, warning = target.kernel.processes()
    assert warning is None
    got = [(p.address, p.pid, p.parent_pid, p.image_name, p.session_id, p.peb, p.dirbase) for p in procs]
    want = [
        (p.address, p.pid, p.parent_pid, p.image, p.session_id, p.peb, p.dirbase) for p in kernel.processes
    ]
    assert got == want
    assert len(got) == 12 and got[0][1:4] == (4, 0, "System")
    # ImageFileName keeps 14 characters, as the kernel stores it.
    assert "SearchIndexer." in [p.image_name for p in procs]
    for p, s in zip(procs, kernel.processes, strict=True):
        assert p.token == s.token
        assert p.object_table == s.object_table
        assert p.f("CreateTime.QuadPart") == s.create_time


def test_threads_match_description(built, target):
    kernel, _ = built
    procs, _ = target.kernel.processes()
    states = set()
    for p, s in zip(procs, kernel.processes, strict=True):
        threads, warning = p.threads(target.kernel.types)
        assert warning is None
        assert len(threads) == 3
        for t, st in zip(threads, s.threads, strict=True):
            assert t.address == st.address
            assert t.cid == (s.pid, st.tid)
            assert t.state_name == THREAD_STATES[st.state]
            if st.wait_reason is not None:
                assert t.wait_reason == WAIT_REASONS[st.wait_reason]
            assert t.teb == st.teb
            assert t.process_address == s.address
            assert t.stack_bounds == {
                "init": st.initial_stack,
                "current": st.kernel_stack,
                "base": st.stack_base,
                "limit": st.stack_limit,
            }
            states.add(t.state_name)
    assert {"RUNNING", "WAIT"} <= states
    # The saved switch frame of a waiting thread returns into KiSwapContext.
    waiting = next(t for t in kernel.threads() if t.switch_return)
    ret = target.dump.read_virtual(waiting.kernel_stack + 0x38, 8)
    assert int.from_bytes(ret, "little") == waiting.switch_return
    assert target.resolver.format_address(waiting.switch_return).startswith("nt!KiSwapContext+")


def test_process_list_cycle_ends_with_warning(table, tmp_path, symbols_dir):
    kernel = build_kernel(table, processes=8, threads_per_process=1, processors=1, seed=7)
    kernel.link_process_cycle(5, 2)
    path = tmp_path / "cycle.dmp"
    write_kernel_dump(kernel, path)
    t = Target(bugcheck.open(path), offline=True, symbols_dir=symbols_dir)
    procs, warning = t.kernel.processes()
    assert [p.pid for p in procs] == [p.pid for p in kernel.processes[:6]]
    assert warning is not None and "loops" in warning
    res = _run(path, symbols_dir, "!process 0 0")
    assert [r["pid"] for r in res.data["processes"]] == [p.pid for p in kernel.processes[:6]]
    assert res.data["warning"] and "loops" in res.data["warning"]
    assert res.text.rstrip().splitlines()[-1].startswith("WARNING: ")


def _run(path, symbols_dir, line):
    from bugcheck.commands.registry import lookup
    from bugcheck.commands.session import Session, load_commands

    load_commands()
    name = line.split()[0]
    if lookup(name) is None:
        pytest.skip(f"{name} is not implemented yet")
    s = Session(bugcheck.open(path), offline=True, symbols_dir=symbols_dir)
    s.raise_errors = True
    return s.run(line)[-1]


def test_process_command_lists_the_description(built, symbols_dir):
    kernel, path = built
    res = _run(path, symbols_dir, "!process 0 0")
    rows = res.data["processes"]
    got = [(r["address"], r["pid"], r["parent_pid"], r["image"], r["session_id"]) for r in rows]
    assert got == [(p.address, p.pid, p.parent_pid, p.image, p.session_id) for p in kernel.processes]
    assert [r["handle_count"] for r in rows] == [p.handle_count for p in kernel.processes]
    assert "PROCESS " in res.text and "Image: SearchIndexer." in res.text


def test_process_command_threads(built, symbols_dir):
    kernel, path = built
    res = _run(path, symbols_dir, "!process 0 2")
    rows = res.data["processes"]
    for r, p in zip(rows, kernel.processes, strict=True):
        got = [(t["address"], t["pid"], t["tid"], t["state"]) for t in r["threads"]]
        assert got == [(t.address, p.pid, t.tid, THREAD_STATES[t.state]) for t in p.threads]


def _frame_functions(frames: list[dict]) -> list[str]:
    return [f["symbol"].split("+", 1)[0] for f in frames]


def test_waiting_thread_stacks_unwind_through_pdata(built, symbols_dir):
    """Waiting threads' stacks are real call chains the synthetic image's .pdata unwinds."""
    kernel, path = built
    user = next(t for t in kernel.processes[3].threads if t.state != 2)
    system = next(t for t in kernel.processes[0].threads if t.state != 2)
    wait = ["nt!KiSwapContext", "nt!KiSwapThread", "nt!KiCommitThreadWait", "nt!KeWaitForSingleObject"]
    res = _run(path, symbols_dir, f"!thread {user.address:x}")
    frames = res.data["frames"]["frames"]
    assert _frame_functions(frames)[:6] == [*wait, "nt!NtWaitForSingleObject", "nt!KiSystemServiceCopyEnd"]
    assert frames[0]["sp"] == user.kernel_stack + 0x40
    assert frames[0]["pc"] == user.switch_return
    # The system call's trap frame gives the user-mode caller.
    assert frames[6]["pc"] < 0x8000_0000_0000 and frames[5]["sp"] == user.trap_frame
    res = _run(path, symbols_dir, f"!thread {system.address:x}")
    frames = res.data["frames"]["frames"]
    assert _frame_functions(frames) == [
        *wait,
        "nt!ExpWorkerThread",
        "nt!PspSystemThreadStartup",
        "nt!KiStartSystemThread",
    ]
    assert frames[-1]["return_address"] == 0


def test_crash_stack(built, symbols_dir):
    kernel, path = built
    res = _run(path, symbols_dir, "k")
    frames = res.data["frames"]
    assert _frame_functions(frames)[:3] == [
        "nt!KeBugCheckEx",
        "nt!NtWaitForSingleObject",
        "nt!KiSystemServiceCopyEnd",
    ]
    assert frames[0]["sp"] == kernel.processors[kernel.crash_processor].context["rsp"]
