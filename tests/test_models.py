"""Model facts of He et al. §4.2: shapes, parameter counts, equal arms, gradients, depth errors, names."""

import pytest
import torch

from reslab.errors import UserError
from reslab.models import CifarNet, blocks_per_stage, count_parameters, weight_layers

# Table 6 of the paper: depth -> parameters (rounded), and the exact counts of the §4.2 net with 10 classes
# (the same as akamaster/pytorch_resnet_cifar10's).
PAPER_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}
EXACT_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_parameter_counts_match_table6(depth):
    params = count_parameters(CifarNet(depth, "A"))
    assert abs(params - PAPER_PARAMS[depth]) / PAPER_PARAMS[depth] < 0.02
    assert params == EXACT_PARAMS[depth]


@pytest.mark.parametrize("depth", [8, 20, 56, 110])
def test_plain_and_option_a_have_identical_parameters(depth):
    plain, residual = CifarNet(depth, "none"), CifarNet(depth, "A")
    assert count_parameters(plain) == count_parameters(residual)
    assert [(n, p.shape) for n, p in plain.named_parameters()] == [(n, p.shape) for n, p in residual.named_parameters()]


def test_option_b_adds_two_projections():
    a, b = CifarNet(20, "A"), CifarNet(20, "B")
    # 1x1 convs 16->32 and 32->64 plus their BN (weight and bias)
    extra = 16 * 32 + 32 * 64 + 2 * (32 + 64)
    assert count_parameters(b) - count_parameters(a) == extra


@pytest.mark.parametrize("shortcut", ["none", "A", "B"])
@pytest.mark.parametrize("in_channels,size,classes", [(3, 32, 10), (1, 28, 10), (3, 32, 100)])
def test_output_shape_and_every_parameter_gets_a_gradient(shortcut, in_channels, size, classes):
    torch.manual_seed(0)
    net = CifarNet(8, shortcut, in_channels=in_channels, num_classes=classes)
    logits = net(torch.randn(4, in_channels, size, size))
    assert logits.shape == (4, classes)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_residual_and_plain_compute_different_functions_with_same_weights():
    torch.manual_seed(0)
    plain, residual = CifarNet(8, "none").eval(), CifarNet(8, "A").eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(plain(x), residual(x))


def test_option_a_shortcut_is_subsampled_identity_with_zero_channels():
    net = CifarNet(8, "A")
    shortcut = net.stage2.block1.shortcut
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_module_names_are_stable_and_in_depth_order():
    names = [name for name, _ in weight_layers(CifarNet(20, "A"))]
    expected = (
        ["stem.conv"] + [f"stage{s}.block{b}.conv{c}" for s in (1, 2, 3) for b in (1, 2, 3) for c in (1, 2)] + ["fc"]
    )
    assert names == expected
    assert len(names) == 20  # 6n+2 weighted layers


@pytest.mark.parametrize("depth,n", [(8, 1), (14, 2), (20, 3), (56, 9), (110, 18), (1202, 200)])
def test_valid_depths(depth, n):
    assert blocks_per_stage(depth) == n


@pytest.mark.parametrize(
    "depth,nearest",
    [
        (7, "depth is 8"),
        (0, "depth is 8"),
        (-8, "depth is 8"),
        (21, "depths are 20 or 26"),
        (57, "depths are 56 or 62"),
        (2, "depth is 8"),
    ],
)
def test_invalid_depth_names_nearest_valid_depths(depth, nearest):
    with pytest.raises(UserError) as err:
        CifarNet(depth)
    message = str(err.value)
    assert "\n" not in message and f"nearest valid {nearest}" in message


@pytest.mark.parametrize("depth", ["20", 20.0, None, True])
def test_non_integer_depth_is_rejected(depth):
    with pytest.raises(UserError, match="integer"):
        CifarNet(depth)


def test_unknown_shortcut_is_rejected():
    with pytest.raises(UserError, match="unknown model.shortcut='C'"):
        CifarNet(20, "C")


def test_the_instruments_layer_index_is_the_same_layer_in_every_arm():
    from reslab.models import depth_layers

    names = {shortcut: [n for n, _ in depth_layers(CifarNet(20, shortcut))] for shortcut in ("none", "A", "B")}
    assert len(names["B"]) == 20 and names["none"] == names["A"] == names["B"]  # B's 1x1 projections left out
    assert len(weight_layers(CifarNet(20, "B"))) == 22  # they still count for FLOPs and parameters


def test_without_batch_norm_the_net_has_no_bn_and_its_convs_a_bias():
    net = CifarNet(20, "A", norm="none")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert all(m.bias is not None for name, m in weight_layers(net))
    # The same names as with BN: the instruments and their plots compare the two directly.
    assert [n for n, _ in net.named_modules()] == [n for n, _ in CifarNet(20, "A").named_modules()]
    assert torch.isfinite(net(torch.randn(4, 3, 32, 32))).all()


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_zero_init_residual_makes_every_residual_block_start_as_the_identity(norm):
    net = CifarNet(20, "A", norm=norm, zero_init_residual=True).eval()
    block = net.stage1.block2  # stride 1, same width: shortcut is the identity
    x = torch.rand(2, 16, 8, 8)  # after a ReLU, inputs are non-negative
    assert torch.equal(block(x), x)
    changed = CifarNet(20, "A", norm=norm).eval().stage1.block2
    assert not torch.allclose(changed(x), x)  # without the option it is not


def test_zero_init_residual_on_a_plain_net_and_an_unknown_norm_are_refused_in_one_line():
    from reslab.errors import UserError

    with pytest.raises(UserError, match="zero_init_residual=true needs a residual arm"):
        CifarNet(20, "none", zero_init_residual=True)
    with pytest.raises(UserError, match=r"unknown model.norm='layer'; choose one of: batch, none"):
        CifarNet(20, "A", norm="layer")
