"""Host synchronisations in the training step: which operations make the CPU wait for the device, and where.

A training step that reads a device value on the host (``.item()``, ``float(t)``, ``if t:``, ``t.tolist()``,
``t.cpu()``, a boolean-mask index, a tensor built from Python data) makes the CPU wait until the GPU has finished
everything queued so far, so it cannot queue the next kernels while the GPU works. This script runs train.py's
Trainer for a few steps and records every such operation with the place in the code that asked for it, split into
*inside a step* (from the Trainer's ``on_step_begin`` to its ``on_step_end``: forward, loss, backward, clipping,
optimizer) and *at the step boundary* (logging, evaluation, saving, the data loader).

* Any device: :class:`HostSyncRecorder`, a ``TorchDispatchMode`` that sees every aten operation
  (``_local_scalar_dense`` is what ``.item()``, ``float()``, ``int()`` and ``bool()`` run; ``nonzero``,
  ``masked_select``, boolean indexing, ``lift_fresh`` = a tensor from Python data) plus patched ``Tensor.tolist``
  / ``numpy`` / ``cpu``, which are no-ops on a CPU and copies to the host on a GPU.
* CUDA in addition: ``torch.cuda.set_sync_debug_mode("warn")`` inside the step; its warnings are counted.

    python -m bench.device.sync_check --model-path PATH [train.py flags ...]   # prints the syncs per phase
    python -m bench.device.sync_check --model-path PATH --device cuda --bf16 true

The test ``tests/test_no_sync.py`` uses the recorder on the CPU; ``bench/device/device_check.sh`` runs this on a GPU.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import TrainerCallback

aten = torch.ops.aten
# Operations whose result size or value the host needs: each one waits for the device.
SYNC_OPS = {
    aten._local_scalar_dense.default: "item/float/int/bool",
    aten.nonzero.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten.lift_fresh.default: "tensor from host data",
    aten.unique_dim.default: "unique",
    aten._unique2.default: "unique",
    aten.repeat_interleave.Tensor: "repeat_interleave",
}
_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}
_OWN_FILES = ("torch/", "contextlib.py", "bench/device/sync_check.py", "threading.py")


def _where() -> list[str]:
    """The innermost frames outside torch (and this file): where the sync came from."""
    frames = [f for f in traceback.extract_stack()[:-3] if not any(s in f.filename for s in _OWN_FILES)]
    return [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-4:]][::-1]


class HostSyncRecorder(TorchDispatchMode):
    """Records every host-synchronising operation while active (see the module docstring), tagged with
    :attr:`phase`."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "outside"
        self.events: list[dict[str, Any]] = []
        self._patches: list[tuple[str, Any]] = []

    def record(self, what: str) -> None:
        self.events.append({"phase": self.phase, "op": what, "where": _where()})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        what = SYNC_OPS.get(func)
        if what is None and func in _INDEX_OPS:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
                what = "boolean-mask index"
        if what is not None:
            self.record(what)
        return func(*args, **kwargs)

    def __enter__(self) -> HostSyncRecorder:
        recorder = self

        def wrap(name: str) -> None:
            original = getattr(torch.Tensor, name)

            def patched(tensor, *args, **kwargs):
                recorder.record(f"Tensor.{name}")
                return original(tensor, *args, **kwargs)

            self._patches.append((name, original))
            setattr(torch.Tensor, name, patched)

        for name in ("tolist", "numpy", "cpu", "__array__"):  # (.to(device) cannot be told apart on a CPU run)
            wrap(name)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for name, original in reversed(self._patches):
            setattr(torch.Tensor, name, original)
        self._patches.clear()
        return super().__exit__(*exc)

    def inside_steps(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["phase"].startswith("step")]

    def summary(self) -> dict[str, Any]:
        counts = collections.Counter((e["phase"].split(" ")[0], e["op"], " < ".join(e["where"][:2]))
                                     for e in self.events)
        return {"total": len(self.events), "inside_steps": len(self.inside_steps()),
                "by_place": [{"phase": p, "op": o, "where": w, "count": n} for (p, o, w), n in counts.most_common()]}


class PhaseCallback(TrainerCallback):
    """Tags the recorder with the phase: ``step N`` from on_step_begin to on_step_end, else ``boundary``.

    On CUDA it also switches ``torch.cuda.set_sync_debug_mode`` to ``warn`` inside steps.
    """

    def __init__(self, recorder: HostSyncRecorder | None, cuda_debug: bool = False) -> None:
        self.recorder = recorder
        self.cuda_debug = cuda_debug

    def on_step_begin(self, args, state, control, **kwargs):
        if self.recorder is not None:
            self.recorder.phase = f"step {state.global_step + 1}"
        if self.cuda_debug:
            torch.cuda.set_sync_debug_mode("warn")

    def on_step_end(self, args, state, control, **kwargs):
        if self.cuda_debug:
            torch.cuda.set_sync_debug_mode("default")
        if self.recorder is not None:
            self.recorder.phase = "boundary"


def attach(trainer: Any, callback: PhaseCallback) -> None:
    """Put ``callback`` right after the Trainer's DefaultFlowCallback, so that its ``on_step_end`` closes the step
    before any other callback (e.g. the finite-loss check, which belongs to the boundary) runs."""
    trainer.callback_handler.callbacks.insert(1, callback)


@contextmanager
def cuda_sync_warnings() -> Iterator[list[str]]:
    """Collect the messages of ``set_sync_debug_mode('warn')`` (other warnings pass through)."""
    found: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield found
    for w in caught:
        if "synchroniz" in str(w.message):
            found.append(f"{Path(w.filename).name}:{w.lineno}: {str(w.message).splitlines()[0][:160]}")
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def run(model_path: str, train_file: str, extra: list[str], device: str, steps: int, dispatch: bool
        ) -> dict[str, Any]:
    """``steps`` training steps of train.py's Trainer (logging once, at the last step), with the recorders on."""
    import train

    with tempfile.TemporaryDirectory() as out:
        argv = ["--model_name_or_path", model_path, "--train_file", train_file, "--output_dir", out,
                "--max_steps", str(steps), "--logging_steps", str(steps), "--save_strategy", "no",
                "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0", *extra]
        trainer = train.setup(argv)
        recorder = HostSyncRecorder() if dispatch else None
        cuda_debug = device.startswith("cuda")
        attach(trainer, PhaseCallback(recorder, cuda_debug))
        with cuda_sync_warnings() as cuda_msgs:
            if recorder is not None:
                with recorder:
                    trainer.train()
            else:
                trainer.train()
        result: dict[str, Any] = {"steps": steps, "device": device, "args": extra}
        if recorder is not None:
            result["dispatch"] = recorder.summary()
        if cuda_debug:
            result["cuda_sync_warnings_inside_steps"] = len(cuda_msgs)
            result["cuda_sync_warning_places"] = dict(collections.Counter(cuda_msgs).most_common(20))
        return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-path", required=True)
    p.add_argument("--train-file", default=None, help="default: wiki sentences from ../shared/data")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--no-dispatch", action="store_true", help="CUDA: only the sync debug mode (less overhead)")
    p.add_argument("--json", default=None)
    args, extra = p.parse_known_args(argv)
    from bench.common import WIKI, read_sentences

    with tempfile.TemporaryDirectory() as tmp:
        train_file = args.train_file
        if train_file is None:
            train_file = os.path.join(tmp, "train.txt")
            Path(train_file).write_text("\n".join(read_sentences(64 * args.steps, WIKI)) + "\n", encoding="utf-8")
        result = run(args.model_path, train_file, extra, args.device, args.steps, not args.no_dispatch)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
