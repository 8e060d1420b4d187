"""The model zoo of Tables 1-2: parameter counts against published numbers, a forward/backward
step per model on a tiny CPU batch, ShakeDrop semantics, and registry errors."""
import pytest
import torch
import torch.nn.functional as F

from classification.models import available_models, build_model
from classification.models.pyramidnet import PyramidBottleneck
from classification.models.shakedrop import ShakeDrop, linear_decay_keep_probs, shake_drop

torch.set_num_threads(1)

# (model, num_classes, published count, source). Each model is built with the class count the
# source counted with. The CIFAR ResNets differ from the ImageNet ones only in the stem (3x3 conv
# instead of 7x7 conv + max-pool; the PreAct ones also move the BNs and drop the shortcut BNs),
# so with 1000 classes they must match the ImageNet counts, which torchvision's weight metadata
# publishes exactly (within 0.1% here).
PUBLISHED_PARAMS = [
    # Xie et al. 2017, Table 7: 34.4M (one column for CIFAR-10/100); bearpaw/pytorch-classification
    # README: 34.43M, "computed on the CIFAR-10 dataset". Measured: 34,426,698.
    ("resnext29_8x64d", 10, 34.43e6, "bearpaw/pytorch-classification README, CIFAR-10"),
    # Huang et al. 2017, Table 2: 0.8M (rounded); bearpaw README: 0.77M on CIFAR-10.
    # Measured: 769,162 (10 classes), 800,032 (100 classes).
    ("densenet_bc_100_12", 10, 0.77e6, "bearpaw/pytorch-classification README, CIFAR-10"),
    # Yun et al. 2019 (CutMix), Table 3: "PyramidNet-200 (alpha=240) (# params: 26.8 M)" on
    # CIFAR-100; jhkim89/PyramidNet README gives 26.6M (class count not stated).
    # Measured: 26,844,952 (100 classes). (26.0M in that README is PyramidNet-272, alpha=200.)
    ("pyramidnet200_240", 100, 26.8e6, "Yun et al. 2019, Table 3, CIFAR-100"),
    # jvlmdr/flax-cifar README (a port of kuangliu/pytorch-cifar): "DenseNet121-32 | 6,956,298"
    # on CIFAR-10. Measured: 6,956,298 (10 classes); 7,971,048 with 1000 classes against
    # torchvision DenseNet121_Weights.IMAGENET1K_V1 num_params 7,978,856 (stem differs).
    ("densenet121", 10, 6_956_298, "jvlmdr/flax-cifar README, CIFAR-10"),
    # torchvision ResNet18_Weights.IMAGENET1K_V1 num_params. Measured: 11,680,040; with 10
    # classes 11,172,170, the "ResNetV2-18" count of the jvlmdr/flax-cifar README.
    ("preact_resnet18", 1000, 11_689_512, "torchvision ResNet-18 weights meta, ImageNet"),
    # No count is published for PreAct ResNet-101; the ResNet-101 count (torchvision
    # ResNet101_Weights.IMAGENET1K_V2 num_params) differs only in BNs. Measured: 44,533,800.
    ("preact_resnet101", 1000, 44_549_160, "torchvision ResNet-101 weights meta, ImageNet"),
    # torchvision ResNet50_Weights.IMAGENET1K_V2 num_params. Measured: 25,549,352.
    ("resnet50", 1000, 25_557_032, "torchvision ResNet-50 weights meta, ImageNet"),
    # torchvision ResNet101_Weights.IMAGENET1K_V2 num_params. Measured: 44,541,480.
    ("resnet101", 1000, 44_549_160, "torchvision ResNet-101 weights meta, ImageNet"),
    # He et al. 2016, Table 6 (CIFAR-10): ResNet-20 0.27M, ResNet-56 0.85M (option A shortcuts).
    # Measured: 272,474 and 855,770.
    ("resnet20", 10, 0.27e6, "He et al. 2016, Table 6, CIFAR-10"),
    ("resnet56", 10, 0.85e6, "He et al. 2016, Table 6, CIFAR-10"),
    # torchvision ResNet152_Weights.IMAGENET1K_V2 num_params (Table 2's ImageNet model).
    ("timm/resnet152", 1000, 60_192_808, "torchvision ResNet-152 weights meta, ImageNet"),
]


def num_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,num_classes,published,source", PUBLISHED_PARAMS,
                         ids=[row[0] for row in PUBLISHED_PARAMS])
def test_param_count_matches_published(name, num_classes, published, source):
    measured = num_params(build_model(name, num_classes))
    assert abs(measured - published) / published < 0.02, (name, measured, published, source)


# (name, input shape, kwargs): batch 2 of 32x32; ResNet-152 at 64x64 with batch 1.
STEP_CASES = [(name, (2, 3, 32, 32), {}) for name in available_models()] + [
    ("pyramidnet200_240", (2, 3, 32, 32), {"shakedrop": True}),
    ("timm/resnet152", (1, 3, 64, 64), {}),
]


@pytest.mark.parametrize("name,shape,kwargs", STEP_CASES,
                         ids=[c[0] + ("+sd" if c[2] else "") for c in STEP_CASES])
def test_forward_backward_step(name, shape, kwargs):
    torch.manual_seed(0)
    model = build_model(name, 10, **kwargs).train()
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 10)
    F.cross_entropy(out, torch.arange(shape[0])).backward()
    # Every parameter takes part in the loss (no dead branch), and nothing blew up.
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", [n for n in available_models() if n != "small_cnn"])
def test_single_channel_input(name):
    # train.py passes in_channels=1 for the 8x8 digits demo.
    model = build_model(name, 10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_linear_decay_keep_probs():
    # Appendix B.1: p_l = 1 - l / L (1 - P_L), P_L = 0.5.
    assert linear_decay_keep_probs(4, 0.5) == [0.875, 0.75, 0.625, 0.5]
    probs = linear_decay_keep_probs(66)
    assert probs[0] == pytest.approx(1 - 0.5 / 66) and probs[-1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="1.5"):
        linear_decay_keep_probs(4, 1.5)


def test_pyramidnet_shakedrop_schedule():
    model = build_model("pyramidnet200_240", 100, shakedrop=True)
    p_keeps = [m.p_keep for m in model.modules() if isinstance(m, ShakeDrop)]
    assert p_keeps == pytest.approx(linear_decay_keep_probs(66, 0.5))  # 3 stages x 22 units


def test_shakedrop_forward_backward_factors():
    # Train: with b = 1 the batch passes unchanged both ways; with b = 0 each sample is scaled by
    # alpha in [-1, 1] forward and an independent beta in [0, 1] backward.
    torch.manual_seed(0)
    seen = set()
    for _ in range(50):
        x = torch.ones(64, 3, 2, 2, requires_grad=True)
        y = shake_drop(x, 0.5, training=True)
        y.backward(torch.ones_like(y))
        fwd, bwd = y.detach()[:, 0, 0, 0], x.grad[:, 0, 0, 0]
        # One factor per sample, constant over channels and pixels.
        assert torch.equal(y.detach(), fwd.view(-1, 1, 1, 1).expand_as(y))
        assert torch.equal(x.grad, bwd.view(-1, 1, 1, 1).expand_as(x))
        if torch.equal(fwd, torch.ones(64)):
            seen.add("kept")
            assert torch.equal(bwd, torch.ones(64))
        else:
            seen.add("shaken")
            assert fwd.min() >= -1 and fwd.max() <= 1 and (fwd < 0).any()
            assert bwd.min() >= 0 and bwd.max() <= 1 and not torch.equal(bwd, fwd)
    assert seen == {"kept", "shaken"}


def test_shakedrop_eval_is_expectation_of_train():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 2, 2)
    assert torch.equal(shake_drop(x, 0.625, training=False), 0.625 * x)
    # E[b + alpha - b alpha] = p (E[alpha] = 0): the Monte-Carlo mean of the train factor.
    # Per draw the mean factor has std <= 0.5, so over 4000 draws std <= 0.008; tolerance 5 sigma.
    ones = torch.ones(256)
    mean = torch.stack([shake_drop(ones, 0.625, training=True).mean() for _ in range(4000)]).mean()
    assert mean.item() == pytest.approx(0.625, abs=0.04)


def test_shakedrop_unit_train_stochastic_eval_formula():
    torch.manual_seed(0)
    unit = PyramidBottleneck(16, 8, stride=2, p_keep=0.5)
    x = torch.randn(2, 16, 8, 8)
    unit.train()
    outs = [unit(x) for _ in range(8)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])
    unit.eval()
    with torch.no_grad():
        y1, y2 = unit(x), unit(x)
        # Eval: x_pooled, zero-padded to 32 channels, + p_keep * F(x).
        expected = 0.5 * unit.branch(x) + F.pad(F.avg_pool2d(x, 2), (0, 0, 0, 0, 0, 16))
    assert torch.equal(y1, y2)
    torch.testing.assert_close(y1, expected)


def test_pyramidnet_shakedrop_train_stochastic_eval_deterministic():
    torch.manual_seed(0)
    model = build_model("pyramidnet200_240", 10, shakedrop=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(x), model(x))
        model.eval()
        assert torch.equal(model(x), model(x))


def test_unknown_model_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="'no_such_net'") as err:
        build_model("no_such_net", 10)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="'timm/no_such_net'"):
        build_model("timm/no_such_net", 10)
