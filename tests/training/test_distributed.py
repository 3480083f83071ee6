"""DDP: 2 processes == 1 process on the same global batch, for every training objective and for train.py itself.

Embeddings are gathered across processes (with gradients), REINFORCE's per-sentence rewards are the process's rows
of the global loss, its batch reward is scaled by the world size, and the keep-rate penalty uses the global mean
keep probability; so the loss and every gradient of one process on the whole batch must come out of two.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertModel

from tests.conftest import SENTENCES

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = WORKER.parents[2]


# Generous limits: under load (other jobs on the 2 cores) a tiny 2-step train.py run under torchrun took minutes.
RUN_TIMEOUT = 900
PROBE_TIMEOUT = 300


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    # Everything on the loopback interface: sandboxes may resolve the host name to an address gloo cannot
    # connect to, which hangs rendezvous instead of failing.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "SentEval")]),
            "GLOO_SOCKET_IFNAME": "lo", "TQDM_DISABLE": "1"}


def torchrun_cmd(nproc: int, *args: str) -> list[str]:
    """One node: the rendezvous store binds a port the OS picks (127.0.0.1:0) and hands it to the workers, so two
    runs at once, or another program, cannot race for a port chosen beforehand."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc}",
            "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", *args]


def launch(cmd: list[str], what: str, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``cmd``; a hang becomes a failure that says what hung, for how long, and the machine's load."""
    try:
        return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{what} did not finish in {timeout} s (load average {os.getloadavg()}): a process waits for "
                    f"another that never came.\n{_tail(err.stdout)}\n{_tail(err.stderr)}")


def _tail(text: str | bytes | None, n: int = 3000) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else (text or "")
    return text[-n:]


def check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, (f"{what} exited with {proc.returncode} (load average {os.getloadavg()}); "
                                  f"its last output:\n{_tail(proc.stdout)}\n{_tail(proc.stderr)}")


def run_worker(nproc: int, model_dir: str, out: Path) -> dict:
    check(launch(torchrun_cmd(nproc, str(WORKER), model_dir, str(out)), f"ddp_worker.py on {nproc} process(es)"),
          f"ddp_worker.py on {nproc} process(es)")
    return torch.load(out, weights_only=True)


def gloo_probe(tmp_path: Path) -> bool:
    """Can this machine run two gloo processes at all? (Some sandboxes forbid the sockets.) Our code is not
    involved, so a failure here is the environment's, and the tests are skipped rather than failed. A probe that
    does not finish is a loaded machine, not a missing feature: that fails, saying so."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from datetime import timedelta\nimport torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo', timeout=timedelta(seconds=120))\n"
        "t = torch.ones(1)\ndist.all_reduce(t)\nassert t.item() == 2\ndist.destroy_process_group()\n"
    )
    return launch(torchrun_cmd(2, str(probe)), "the two-process gloo probe", PROBE_TIMEOUT).returncode == 0


GLOO_SKIP = "two gloo processes cannot talk on this machine (a bare all_reduce failed); not our code"


@pytest.fixture(scope="module")
def gloo(tmp_path_factory) -> None:
    if not gloo_probe(tmp_path_factory.mktemp("gloo")):
        pytest.skip(GLOO_SKIP)


@pytest.fixture(scope="module")
def one_and_two(gloo, tiny_bert_dir, tmp_path_factory) -> tuple[dict, dict]:
    tmp = tmp_path_factory.mktemp("ddp")
    return run_worker(1, tiny_bert_dir, tmp / "one.pt"), run_worker(2, tiny_bert_dir, tmp / "two.pt")


SCENARIOS = ["plain", "gs_soft", "gs_st", "gs_reinforce_sentence", "gs_reinforce_batch", "sup_hard_negatives",
             "sup_hard_negatives_gs", "gs_keep_rate_penalty"]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_processes_match_one_process(one_and_two, scenario):
    one, two = (results[scenario] for results in one_and_two)
    torch.testing.assert_close(two["loss"], one["loss"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(two["contrastive_loss"], one["contrastive_loss"], atol=1e-5, rtol=1e-5)
    assert one["grads"].keys() == two["grads"].keys()
    for name, grad in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], grad, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
    if scenario.startswith("gs") or scenario.endswith("_gs"):  # the proxy learns in this step, in both runs
        proxy = [g for n, g in one["grads"].items() if n.startswith("proxy.encoder.")]
        assert proxy and max(g.abs().max().item() for g in proxy) > 0


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_two_processes_with_the_cached_loss_match_one_process(one_and_two, scenario):
    """The cached loss (chunks of 2: 2 + 1 examples per process) on two processes, gradients averaged by hand,
    against one process without it, on draws that do not depend on the sharding or chunking (ContentNoise)."""
    one, two = one_and_two
    reference = one[f"content_{scenario}"]
    for cached in (one[f"cached_{scenario}"], two[f"cached_{scenario}"]):
        torch.testing.assert_close(cached["loss"], reference["loss"], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(cached["baseline"], reference["baseline"], atol=1e-6, rtol=1e-6, equal_nan=True)
        assert cached["grads"].keys() == reference["grads"].keys()
        for name, grad in reference["grads"].items():
            torch.testing.assert_close(cached["grads"][name], grad, atol=1e-5, rtol=1e-4,
                                       msg=lambda m, n=name: f"{n}: {m}")


def test_the_worker_covers_every_objective():
    import tests.training.ddp_worker as worker

    assert list(worker.SCENARIOS) == SCENARIOS
    estimators = {s.get("gs_estimator", "soft") for s in worker.SCENARIOS.values() if s.get("use_gs")}
    rewards = {s.get("gs_reinforce_reward") for s in worker.SCENARIOS.values() if s.get("gs_estimator") == "reinforce"}
    assert estimators == {"soft", "st", "reinforce"} and rewards == {"sentence", "batch"}


@pytest.fixture(scope="module")
def tiny_bert_without_dropout(tiny_bert_dir, tmp_path_factory) -> str:
    """The tiny BERT with dropout 0: train.py's first step is then the same computation on 1 or 2 processes."""
    out = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    BertModel.from_pretrained(tiny_bert_dir, **no_dropout).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return str(out)


def train_args(model_dir: str, data: Path, out: Path, batch: int, *extra: str) -> list[str]:
    return [str(REPO / "train.py"), "--model_name_or_path", model_dir, "--train_file", str(data),
            "--output_dir", str(out), "--use_gs", "false", "--pooler_type", "cls", "--max_steps", "2",
            "--per_device_train_batch_size", str(batch), "--logging_steps", "1", "--report_to", "none",
            "--save_strategy", "no", "--dataloader_num_workers", "0", "--seed", "3", *extra]


def logged(out: Path) -> list[dict]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]


def assert_same_steps(run: list[dict], reference: list[dict]) -> None:
    """Two logged steps equal: the loss of a near-random tiny model is about log(8) whatever the batch, so the
    gradient norm and the next step's loss are what show that one model trained on the sharded global batch."""
    assert [h["step"] for h in run] == [1, 2]
    assert run[0]["loss"] == pytest.approx(reference[0]["loss"], rel=1e-5)
    assert run[0]["grad_norm"] == pytest.approx(reference[0]["grad_norm"], rel=1e-4)
    assert run[1]["loss"] == pytest.approx(reference[1]["loss"], rel=1e-5)
    assert run[1]["grad_norm"] == pytest.approx(reference[1]["grad_norm"], rel=1e-3)


@pytest.fixture(scope="module")
def one_process_run(gloo, tiny_bert_without_dropout, tmp_path_factory) -> tuple[Path, list[dict]]:
    """``torchrun --nproc_per_node 1 train.py`` at batch 8: the reference of the multi-process runs below."""
    tmp = tmp_path_factory.mktemp("one-process")
    data = tmp / "train.txt"
    data.write_text("\n".join(SENTENCES * 4) + "\n", encoding="utf-8")
    out = tmp / "out1"
    check(launch(torchrun_cmd(1, *train_args(tiny_bert_without_dropout, data, out, 8)), "train.py on 1 process"),
          "train.py on 1 process")
    return data, logged(out)


@pytest.mark.slow
def test_torchrun_train_py_two_processes_first_step_equals_one(one_process_run, tiny_bert_without_dropout, tmp_path):
    """``torchrun --nproc_per_node 2 train.py`` for 2 steps on gloo: the first logged loss equals one process on the
    same global batch (8 = 2 x 4), because both see the same shuffled examples and gather the embeddings."""
    data, one = one_process_run
    out = tmp_path / "out2"
    what = "train.py on 2 processes (torchrun)"
    check(launch(torchrun_cmd(2, *train_args(tiny_bert_without_dropout, data, out, 4)), what), what)
    assert_same_steps(logged(out), one)


def two_node_cmds(port: int, *args: str) -> list[list[str]]:
    """What a two-node launch runs, one command per node (here both on this machine, on the loopback address)."""
    return [[sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}",
             "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={port}", *args] for rank in (0, 1)]


@pytest.mark.slow
def test_a_two_node_launch_simulated_on_one_machine_equals_one_process(one_process_run, tiny_bert_without_dropout,
                                                                      tmp_path):
    """``torchrun --nnodes 2 --node_rank 0|1 --master_addr ... --master_port P train.py`` as two processes of
    this machine (one process per "node", batch 4 each) gives the one-process run at batch 8. The port is chosen
    beforehand, as on real nodes, so a clash with another program is retried with a new one."""
    data, one = one_process_run
    what = "a two-node launch (torchrun --nnodes 2, both nodes on 127.0.0.1)"
    for attempt in range(3):
        out = tmp_path / f"nodes{attempt}"
        procs = [subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                 for cmd in two_node_cmds(free_port(), *train_args(tiny_bert_without_dropout, data, out, 4))]
        try:
            results = [p.communicate(timeout=RUN_TIMEOUT) for p in procs]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"{what} did not finish in {RUN_TIMEOUT} s (load average {os.getloadavg()}).")
        if all(p.returncode == 0 for p in procs):
            break
        text = "".join(o + e for o, e in results)
        if "EADDRINUSE" not in text and "address already in use" not in text.lower():
            pytest.fail(f"{what} failed: exit codes {[p.returncode for p in procs]}; last output:\n{_tail(text)}")
    else:
        pytest.fail(f"{what}: the port was taken three times in a row.")
    assert_same_steps(logged(out), one)


ACCELERATE_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yml"))


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_the_accelerate_configs_load(config):
    """Each shipped ``accelerate launch --config_file`` file is one accelerate reads (keys, types, values)."""
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    assert loaded.num_processes >= 1 and loaded.num_machines >= 1
    if loaded.num_machines > 1:
        assert loaded.main_process_ip == "127.0.0.1" and loaded.main_process_port  # loopback until edited


@pytest.mark.slow
def test_accelerate_launch_with_the_cached_loss_equals_one_process(one_process_run, tiny_bert_without_dropout,
                                                                   tmp_path):
    """``accelerate launch --config_file configs/accelerate/cpu-2-processes.yml train.py ... --mini_batch_size 3``:
    two processes (batch 4 each, chunks of 3 + 1) give the one-process run at batch 8 without caching."""
    data, one = one_process_run
    out = tmp_path / "accelerate"
    what = "accelerate launch (cpu-2-processes.yml) with --mini_batch_size"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "configs" / "accelerate" / "cpu-2-processes.yml"),
           *train_args(tiny_bert_without_dropout, data, out, 4, "--mini_batch_size", "3")]
    check(launch(cmd, what), what)
    assert_same_steps(logged(out), one)
