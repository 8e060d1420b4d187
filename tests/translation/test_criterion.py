"""Properties of the self_kd_cross_entropy criterion (docs/design.md, "Targets"; Sec. 2.1 and Eq. 6)."""
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("fairseq")

from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss  # noqa: E402

from translation.criterion import self_kd_token_loss  # noqa: E402

PAD, V, N = 1, 11, 40


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lprobs = torch.log_softmax(torch.randn(N, V, generator=g, dtype=torch.float64), -1)
    target = torch.randint(0, V, (N,), generator=g)
    target[::4] = PAD  # every fourth token is padding
    teacher = torch.softmax(torch.randn(N, V, generator=g, dtype=torch.float64), -1)
    return lprobs, target, teacher


def test_alpha_zero_is_plain_nll():
    lprobs, target, teacher = _batch()
    loss, nll = self_kd_token_loss(lprobs, target, PAD, teacher, 0.0)
    ref = F.nll_loss(lprobs, target, ignore_index=PAD, reduction="sum")
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(nll, ref)
    torch.testing.assert_close(self_kd_token_loss(lprobs, target, PAD, None, 0.0)[0], ref)


def test_soft_target_formula():
    lprobs, target, teacher = _batch(1)
    a = 0.37
    loss, _ = self_kd_token_loss(lprobs, target, PAD, teacher, a)
    keep = target != PAD
    soft = (1 - a) * F.one_hot(target, V).double() + a * teacher
    torch.testing.assert_close(loss, -(soft * lprobs)[keep].sum())


def test_uniform_teacher_is_label_smoothing_paper_convention():
    # (1 - eps) onehot + eps / V  ==  torch's cross_entropy(label_smoothing=eps)
    lprobs, target, _ = _batch(2)
    eps = 0.1
    uniform = torch.full((N, V), 1.0 / V, dtype=torch.float64)
    loss, _ = self_kd_token_loss(lprobs, target, PAD, uniform, eps)
    ref = F.cross_entropy(lprobs, target, ignore_index=PAD, reduction="sum", label_smoothing=eps)
    torch.testing.assert_close(loss, ref)


def test_uniform_teacher_matches_fairseq_label_smoothing():
    # fairseq puts 1 - eps on the target and eps / (V - 1) on the others: the uniform teacher
    # with a = eps * V / (V - 1) (the criterion's ls_convention="fairseq").
    lprobs, target, _ = _batch(3)
    eps = 0.1
    uniform = torch.full((N, V), 1.0 / V, dtype=torch.float64)
    loss, nll = self_kd_token_loss(lprobs, target, PAD, uniform, eps * V / (V - 1))
    ref_loss, ref_nll = label_smoothed_nll_loss(lprobs, target, eps, ignore_index=PAD)
    torch.testing.assert_close(loss, ref_loss)
    torch.testing.assert_close(nll, ref_nll)


def test_padding_contributes_nothing():
    lprobs, target, teacher = _batch(4)
    loss, nll = self_kd_token_loss(lprobs, target, PAD, teacher, 0.5)
    pad = target == PAD
    lp2, t2 = lprobs.clone(), teacher.clone()
    lp2[pad] = torch.log_softmax(torch.randn(int(pad.sum()), V, dtype=torch.float64), -1)
    t2[pad] = 1.0 / V
    loss2, nll2 = self_kd_token_loss(lp2, target, PAD, t2, 0.5)
    torch.testing.assert_close((loss, nll), (loss2, nll2))
    keep = ~pad
    sub, _ = self_kd_token_loss(lprobs[keep], target[keep], PAD, teacher[keep], 0.5)
    torch.testing.assert_close(loss, sub)


def test_alpha_needs_teacher():
    lprobs, target, _ = _batch()
    with pytest.raises(ValueError, match="needs teacher_probs"):
        self_kd_token_loss(lprobs, target, PAD, None, 0.3)


def _task_model_sample(prep_dir, criterion_args):
    """The plugin's task, a tiny Transformer and one training batch, built as fairseq-train does."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    from core.config import load_config
    from tests.conftest import REPO
    from tests.translation.conftest import TINY
    from translation.train import TrainConfig, fairseq_argv

    cfg = load_config(TrainConfig, REPO / "translation/configs/multi30k_de_en_selfkd.yaml",
                      TINY + [f"data.prep_dir={prep_dir}"])
    argv = fairseq_argv(cfg, prep_dir / "ckpt", use_cuda=False) + criterion_args
    fs = convert_namespace_to_omegaconf(
        options.parse_args_and_arch(options.get_training_parser(), input_args=argv))
    torch.manual_seed(0)
    task = tasks.setup_task(fs.task)
    task.load_dataset("train")
    model = task.build_model(fs.model)
    criterion = task.build_criterion(fs.criterion)
    itr = task.get_batch_iterator(task.dataset("train"), max_tokens=1024, seed=1)
    sample = next(itr.next_epoch_itr(shuffle=False))
    return task, model, criterion, sample


def test_criterion_ls_equals_fairseq_label_smoothed_cross_entropy(tiny_multi30k):
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion

    task, model, ours, sample = _task_model_sample(
        tiny_multi30k, ["--selfkd-alpha-T", "0", "--ls-eps", "0.1", "--ls-convention", "fairseq"])
    theirs = LabelSmoothedCrossEntropyCriterion(task, False, 0.1)
    model.train()
    torch.manual_seed(1)
    loss, size, log = ours(model, sample)
    torch.manual_seed(1)
    ref, ref_size, ref_log = theirs(model, sample)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(log["nll_loss"], ref_log["nll_loss"], rtol=1e-5, atol=1e-4)
    assert size == ref_size


def test_criterion_self_kd_uses_previous_epoch_snapshot(tiny_multi30k):
    task, model, criterion, sample = _task_model_sample(tiny_multi30k, [])
    assert task.keep_teacher and criterion.alpha_T == 0.7
    model.train()
    task.begin_epoch(1, model)
    assert task.snapshot.model is None and criterion.alpha_in_force() == 0.0
    loss1, _, log1 = criterion(model, sample)
    torch.testing.assert_close(loss1, log1["nll_loss"])  # epoch 1: plain NLL
    task.begin_epoch(2, model)
    teacher = task.snapshot.model
    assert teacher is not model and not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    alpha = criterion.alpha_in_force()
    assert alpha == pytest.approx(0.7 * 2 / 3)
    with torch.no_grad():  # the snapshot is not touched by later updates of the model
        for p in model.parameters():
            p.add_(0.01)
    torch.manual_seed(2)
    loss, _, log = criterion(model, sample)
    torch.manual_seed(2)
    out = model(**sample["net_input"])
    lprobs = model.get_normalized_probs(out, log_probs=True).view(-1, out[0].size(-1))
    with torch.no_grad():
        tprobs = teacher.get_normalized_probs(teacher(**sample["net_input"]), log_probs=False)
    ref, _ = self_kd_token_loss(lprobs, sample["target"].view(-1), task.target_dictionary.pad(),
                                tprobs.view(-1, tprobs.size(-1)), alpha)
    torch.testing.assert_close(loss, ref)
    model.eval()  # validation reports plain NLL
    loss_eval, _, log_eval = criterion(model, sample)
    torch.testing.assert_close(loss_eval, log_eval["nll_loss"])
    assert math.isfinite(loss.item())


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
def test_linear_form_equals_the_soft_target_definition(a):
    """The criterion never builds the (N, V) target: its value and gradient equal the soft-target
    cross entropy with core.targets.self_kd_targets (the definition), on the non-padding rows."""
    from core.targets import self_kd_targets
    lprobs, target, teacher = _batch(7)
    lp = lprobs.clone().requires_grad_(True)
    loss, _ = self_kd_token_loss(lp, target, PAD, teacher, a)
    (g,) = torch.autograd.grad(loss, lp)
    lp_ref = lprobs.clone().requires_grad_(True)
    keep = target != PAD
    ref = -(self_kd_targets(target[keep], teacher[keep], a) * lp_ref[keep]).sum()
    (g_ref,) = torch.autograd.grad(ref, lp_ref)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(g, g_ref)


def test_uniform_teacher_flag_equals_the_uniform_tensor():
    lprobs, target, _ = _batch(8)
    uniform = torch.full((N, V), 1.0 / V, dtype=torch.float64)
    for a in (0.1, 0.1 * V / (V - 1)):
        torch.testing.assert_close(self_kd_token_loss(lprobs, target, PAD, None, a, uniform_teacher=True),
                                   self_kd_token_loss(lprobs, target, PAD, uniform, a))
