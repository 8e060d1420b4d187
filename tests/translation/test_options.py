"""Translation details the paper leaves open, as options with a stated default (tiny runs):
the Self-KD teacher's mode (eval by default, or train: dropout on), the evaluated weights
(checkpoint_best.pt by default, or the mean of the last N epoch checkpoints), the beam size; and
the entry points' quiet output (translation.data and translation.evaluate as translation.train)."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from core.runlog import read_run_log
from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation import evaluate
from translation.train import main

CONFIGS = REPO / "translation" / "configs"


def _run(prep, out, config, *extra):
    return main(["--config", str(CONFIGS / config)] + TINY + [f"data.prep_dir={prep}", f"out_dir={out}"]
                + list(extra))


def _strip(epochs):
    return [{k: v for k, v in e.items() if k != "epoch_wall_s"} for e in epochs]


def test_teacher_mode_eval_by_default_or_train(tiny_multi30k, tmp_path, monkeypatch):
    """method.selfkd.teacher_mode: the snapshot teacher runs in eval mode (no dropout) unless "train";
    epoch 1 has no teacher (identical runs), from epoch 2 the targets differ; a train-mode run cut
    after epoch 1 resumes to the uninterrupted one (its dropout masks come from fairseq's
    per-update seed)."""
    pytest.importorskip("fairseq")
    from core.teacher import SnapshotTeacher
    seen = []
    probs = SnapshotTeacher.probs

    def spy(self, *args, **kwargs):
        seen.append(self.model.training)
        return probs(self, *args, **kwargs)

    monkeypatch.setattr(SnapshotTeacher, "probs", spy)
    assert _run(tiny_multi30k, tmp_path, "multi30k_de_en_selfkd.yaml", "epochs=2", "run_id=eval") == 0
    assert seen and not any(seen)  # the default: eval mode
    seen.clear()
    assert _run(tiny_multi30k, tmp_path, "multi30k_de_en_selfkd.yaml", "epochs=2", "run_id=train",
                "method.selfkd.teacher_mode=train") == 0
    assert seen and all(seen)
    ev, tr = (read_run_log(tmp_path / "table4" / r / "log.jsonl", strict=True) for r in ("eval", "train"))
    assert ev.meta["config"]["method"]["selfkd"]["teacher_mode"] == "eval"
    assert "--selfkd-teacher-mode" in tr.meta["fairseq_train_args"]
    assert _strip(ev.epochs[:1]) == _strip(tr.epochs[:1])  # epoch 1: no teacher yet
    assert ev.epochs[1]["train_loss"] != tr.epochs[1]["train_loss"]
    # resume in train mode
    assert _run(tiny_multi30k, tmp_path, "multi30k_de_en_selfkd.yaml", "epochs=2", "run_id=cut",
                "method.selfkd.teacher_mode=train", "stop_after_epochs=1") == 0
    assert _run(tiny_multi30k, tmp_path, "multi30k_de_en_selfkd.yaml", "epochs=2", "run_id=cut",
                "method.selfkd.teacher_mode=train", "--resume") == 0
    cut = read_run_log(tmp_path / "table4" / "cut" / "log.jsonl", strict=True)
    assert _strip(cut.epochs) == _strip(tr.epochs) and cut.final["metrics"]["bleu"] == tr.final["metrics"]["bleu"]
    assert main(["--config", str(CONFIGS / "multi30k_de_en_selfkd.yaml"), "method.selfkd.teacher_mode=dropout"]) == 2


def test_average_checkpoints_as_fairseq(tmp_path):
    """fairseq's average_checkpoints.py: the newest-first last N checkpoint<epoch>.pt, fp16 summed
    in fp32, floating tensors divided, integer ones floor-divided, the rest of the state the newest
    checkpoint's; other parameters or too few checkpoints are one-line errors."""
    from translation.checkpoints import average_checkpoints, last_epoch_checkpoints
    for epoch in (1, 2, 3, 10):
        torch.save({"cfg": {"task": {}}, "model": {"w": torch.full((2,), float(epoch)),
                                                   "h": torch.full((2,), epoch / 4, dtype=torch.float16),
                                                   "n": torch.tensor([epoch])},
                    "extra_state": {"epoch": epoch}}, tmp_path / f"checkpoint{epoch}.pt")
    (tmp_path / "checkpoint_best.pt").write_bytes(b"")
    paths = last_epoch_checkpoints(tmp_path, 3)
    assert [p.name for p in paths] == ["checkpoint10.pt", "checkpoint3.pt", "checkpoint2.pt"]
    state = average_checkpoints(paths)
    assert torch.equal(state["model"]["w"], torch.full((2,), 5.0))
    assert state["model"]["h"].dtype == torch.float32 and torch.allclose(state["model"]["h"], torch.full((2,), 1.25))
    assert torch.equal(state["model"]["n"], torch.tensor([5]))
    assert state["extra_state"] == {"epoch": 10}
    with pytest.raises(ValueError, match="holds 4 epoch checkpoints"):
        last_epoch_checkpoints(tmp_path, 5)
    torch.save({"cfg": {"task": {}}, "model": {"v": torch.zeros(2)}}, tmp_path / "checkpoint11.pt")
    with pytest.raises(ValueError, match="other parameters"):
        average_checkpoints(last_epoch_checkpoints(tmp_path, 2))


def test_average_last_n_checkpoints_in_training_and_evaluation(tiny_multi30k, tiny_checkpoint, tmp_path, capsys):
    """eval.average_last=N keeps the last N epoch checkpoints and evaluates their mean weights
    (checkpoint_avg_lastN.pt, named in the final record); translation.evaluate --average-last N
    on the checkpoints folder gives the same scores. The default keeps no epoch checkpoint and
    evaluates checkpoint_best.pt."""
    pytest.importorskip("fairseq")
    from translation.checkpoints import read_checkpoint
    assert _run(tiny_multi30k, tmp_path, "multi30k_de_en_baseline.yaml", "run_id=avg", "eval.average_last=2") == 0
    ckpts = tmp_path / "table4" / "avg" / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("checkpoint[0-9]*.pt")) == ["checkpoint2.pt", "checkpoint3.pt"]
    final = read_run_log(tmp_path / "table4" / "avg" / "log.jsonl", strict=True).final["metrics"]
    assert final["checkpoint"] == "checkpoint_avg_last2.pt" and final["averaged"] == ["checkpoint3.pt", "checkpoint2.pt"]
    avg, a, b = (read_checkpoint(ckpts / n)["model"] for n in ("checkpoint_avg_last2.pt", "checkpoint3.pt", "checkpoint2.pt"))
    assert a.keys() == avg.keys() and not torch.equal(a["encoder.embed_tokens.weight"], b["encoder.embed_tokens.weight"])
    assert all(torch.equal(avg[k], (a[k].clone() + b[k]) / 2) for k in avg)
    capsys.readouterr()
    assert evaluate.main([str(ckpts), str(tiny_multi30k), "-s", "de", "-t", "en", "--beam", "2",
                          "--average-last", "2"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: scores[k] for k in ("bleu", "bleu_tok")} == {k: final[k] for k in ("bleu", "bleu_tok")}
    for argv, why in (([str(ckpts / "checkpoint3.pt"), "--average-last", "2"], "is not a folder"),
                      ([str(ckpts), "--average-last", "3"], "holds 2 epoch checkpoints"),
                      ([str(ckpts / "checkpoint3.pt"), "--beam", "0"], "--beam must be >= 1")):
        assert evaluate.main(argv[:1] + [str(tiny_multi30k), "-s", "de", "-t", "en"] + argv[1:]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
    # the default: no epoch checkpoints kept, checkpoint_best.pt evaluated
    default = read_run_log(tiny_checkpoint.parent.parent / "log.jsonl", strict=True)
    assert default.final["metrics"]["checkpoint"] == "checkpoint_best.pt" and "averaged" not in default.final["metrics"]
    assert not list(tiny_checkpoint.parent.glob("checkpoint[0-9]*.pt"))
    assert "--no-epoch-checkpoints" in default.meta["fairseq_train_args"]
    assert main(["--config", str(CONFIGS / "multi30k_de_en_baseline.yaml"), "epochs=3",
                 "eval.average_last=4"]) == 2


def _greedy(model, task, sample_src):
    """Greedy decoding written out: argmax of the next token given the previous ones (padding
    never, end of sentence not as the first token: fairseq's min_len 1)."""
    tgt = task.target_dictionary
    enc = model.encoder(sample_src, src_lengths=torch.tensor([sample_src.numel()]))
    out = [tgt.eos()]
    for step in range(200):
        logits, _ = model.decoder(torch.tensor([out]), encoder_out=enc)
        lp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        lp[tgt.pad()] = -float("inf")
        if step == 0:
            lp[tgt.eos()] = -float("inf")
        tok = int(lp.argmax())
        if tok == tgt.eos():
            break
        out.append(tok)
    return tgt.string(torch.tensor(out[1:]), "subword_nmt")


@pytest.mark.filterwarnings("ignore:.pin_memory.:UserWarning")  # in-process, not quieted
def test_beam_size_reaches_the_search(tiny_checkpoint, tiny_multi30k):
    """--beam (default 5) is the beam search's width: beam 1 is greedy decoding."""
    pytest.importorskip("fairseq")
    from fairseq import checkpoint_utils
    hyps = evaluate.translate(tiny_checkpoint, tiny_multi30k / "bin", "test", beam=1, device="cpu")
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(tiny_checkpoint)], arg_overrides={"data": str(tiny_multi30k / "bin")})
    model = models[0].eval()
    task.load_dataset("test")
    with torch.no_grad():
        greedy = [_greedy(model, task, task.dataset("test")[i]["source"].unsqueeze(0)) for i in range(10)]
    assert hyps[:10] == greedy and len(set(greedy)) > 5


NOISE = re.compile(r"INFO|Namespace\(|tensorboardX|FutureWarning|torch\.jit|pin_memory|it/s\]|Warning")


def test_prep_and_evaluate_are_quiet(tiny_checkpoint, tiny_multi30k, tmp_path):
    """translation.data and translation.evaluate print their own lines only, as translation.train
    does: none of fairseq's INFO lines and Namespace dump, "Please install tensorboardX",
    torch.jit's FutureWarning, the DataLoader's pin_memory warning or the BPE progress bar (each of
    them reaches stderr with --verbose)."""
    pytest.importorskip("fairseq")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def run(*argv):
        return subprocess.run([sys.executable, "-m", *map(str, argv)], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=600)

    prep = run("translation.data", "--config", CONFIGS / "prep/multi30k_de_en.yaml",
               f"raw_path={REPO.parent / 'shared/data/multi30k'}", f"out_dir={tmp_path / 'prep'}",
               "max_train_pairs=50", "max_eval_pairs=10", "bpe_merges=100")
    assert prep.returncode == 0, prep.stderr
    assert prep.stderr == "" and prep.stdout.strip().splitlines() == [
        f"translation.data: {tmp_path / 'prep'}: train 50, valid 10, test 10"]
    ev = run("translation.evaluate", tiny_checkpoint, tiny_multi30k, "-s", "de", "-t", "en", "--beam", "1")
    assert ev.returncode == 0, ev.stderr
    assert ev.stderr == "" and len(ev.stdout.strip().splitlines()) == 1
    assert json.loads(ev.stdout)["bleu_tok"] >= 0
    loud = run("translation.evaluate", tiny_checkpoint, tiny_multi30k, "-s", "de", "-t", "en", "--beam", "1",
               "--verbose")
    assert loud.returncode == 0 and NOISE.search(loud.stderr + loud.stdout.rsplit("\n", 2)[0])
