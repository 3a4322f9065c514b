"""x86 ``kv`` ends each frame with what its FPO or frame-data record says, in kd's words
(``(FPO: [Non-Fpo])``, ``(FPO: [2,0,0])``, ``(FPO: [EBP 0x…] [0,0,4])``); ``kb`` does not."""

from __future__ import annotations

from types import SimpleNamespace

from bugcheck.commands.stack import render
from bugcheck.stack import fpo
from bugcheck.stack.frames import Frame, StackWalk
from bugcheck.stack.x86 import fpo_annotation


def _fpo_record(frame_type=fpo.FRAME_FPO, params=2, locals_=0, regs=0, seh=False, bp=False):
    return SimpleNamespace(
        locals_dwords=locals_,
        params_dwords=params,
        saved_regs=regs,
        prolog_size=0,
        has_seh=seh,
        uses_bp=bp,
        frame_type=frame_type,
    )


def test_annotations_follow_the_record():
    assert fpo_annotation(_fpo_record()) == "FPO: [2,0,0]"
    assert fpo_annotation(_fpo_record(frame_type=fpo.FRAME_NONFPO)) == "FPO: [Non-Fpo]"
    assert fpo_annotation(_fpo_record(params=0, regs=4, bp=True), saved_ebp=0xFAFA3D48) == (
        "FPO: [EBP 0xfafa3d48] [0,0,4]"
    )
    assert fpo_annotation(_fpo_record(seh=True)) == "FPO: [SEH]"
    assert fpo_annotation(_fpo_record(frame_type=fpo.FRAME_TRAP, params=0), trap_frame=0xF78D2D64) == (
        "FPO: [0,0] TrapFrame @ f78d2d64"
    )


def test_kv_prints_them_and_kb_does_not():
    frames = [
        Frame(
            0, 0x804FE997, 0xFAFA3D30, 0x80506A17, [1, 2, 3], method="context", symbol="nt!KiSwapContext+0x25"
        ),
        Frame(1, 0x80506A17, 0xFAFA3D48, 0x80506B36, [4, 5, 6], method="fpo", symbol="nt!KiSwapThread+0x85"),
        Frame(
            2, 0x80506B36, 0xFAFA3D78, 0, [7, 8, 9], method="frame_pointer", symbol="nt!KeRemoveQueue+0x24c"
        ),
    ]
    frames[0].fp, frames[1].fp, frames[2].fp = 0xFAFA3D30, 0xFAFA3D48, 0xFAFA3D78
    frames[0].fpo = "FPO: [EBP 0xfafa3d48] [0,0,4]"
    frames[1].fpo = "FPO: [Non-Fpo]"
    sw = StackWalk(frames)
    kv = render(sw, 4, args=True, verbose=True, numbers=False)
    assert (
        kv[1]
        == "fafa3d30 80506a17 00000001 00000002 00000003 nt!KiSwapContext+0x25 (FPO: [EBP 0xfafa3d48] [0,0,4])"
    )
    assert kv[2].endswith("nt!KiSwapThread+0x85 (FPO: [Non-Fpo])")
    assert kv[3].endswith("nt!KeRemoveQueue+0x24c")
    kb = render(sw, 4, args=True, verbose=False, numbers=False)
    assert not any("FPO" in ln for ln in kb)
