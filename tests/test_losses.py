"""Losses: hand-computed values, limits, gradients, agreement with MONAI, SBFL's beta variants."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss, DiceLoss, FocalLoss, TverskyLoss

from lesionseg.losses import (
    BINARY_LOSSES,
    LOSSES,
    MULTICLASS_LOSSES,
    blob_dice_loss,
    create_loss,
    focal_loss,
    focal_terms,
    self_balancing_focal_loss,
)

# Tiny binary case: logits z and target y over a (1, 1, 2, 2) image; p = sigmoid(z) =
# [0.880797, 0.268941, 0.622459, 0.047426].
Z = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
Y = torch.tensor([[[1, 0], [1, 0]]])
# Tiny multi-class case: 4 pixels x 3 classes as logits (1, 3, 2, 2); target classes [[0, 1], [2, 1]].
ZM = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 3.0]]).T.reshape(
    1, 3, 2, 2
)
YM = torch.tensor([[[0, 1], [2, 1]]])

# (loss name, params, expected), expected values worked out in float64 from the definitions:
# BCE: mean(-log .8808, -log .7311, -log .6225, -log .9526) = mean(.1269, .3133, .4741, .0486).
# focal (TS-CNN eq. 1): mean(alpha * pos + (1 - alpha) * neg), pos = -y (1-p)^g log(p+eps),
#   neg = -(1-y) p^g log(1-p+eps).
# binary focal (thesis eq. 2): mean(alpha * pos + neg) with eps = 0.
# SBFL: beta = 0.4 * sum(neg) / (sum(neg) + sum(pos)) + 0.5 = 0.623354 (gamma 1, eps 1e-7).
# Dice: TP = 1.503256, FP = 0.316367, FN = 0.496744 -> 1 - (2 TP + 1) / (2 TP + FP + FN + 1).
# Tversky: TI = (TP + 1) / (TP + 0.7 FN + 0.3 FP + 1); focal Tversky (1 - TI)^4.
# CE per pixel: [0.407606, 0.239545, 1.098612, 3.065884]; class-weighted (inverse frequency) = mean of
#   class means = (0.407606 + (0.239545 + 3.065884) / 2 + 1.098612) / 3; fixed weights (1, 2, 0.5).
HAND_CASES = [
    ("binary_cross_entropy", {}, 0.2407135086),
    ("focal_loss", {}, 0.0458393604),
    ("focal_loss", {"alpha": 0.25, "gamma": 2.0, "eps": 0.0}, 0.0086049422),
    ("binary_focal_loss", {}, 0.0230360985),
    ("binary_focal_loss", {"alpha": 0.5}, 0.0143639669),
    ("self_balancing_focal_loss", {}, 0.0384003340),
    ("self_balancing_focal_loss", {"detach_beta": True}, 0.0384003340),
    ("soft_dice_loss", {}, 0.1687083755),
    ("dice_bce_loss", {}, 0.1687083755 + 0.2407135086),  # soft Dice + binary cross-entropy, as above
    # one lesion (the left column): its blob Dice is the global soft Dice, weighted 0.5
    ("dice_bce_blob_loss", {}, 1.5 * 0.1687083755 + 0.2407135086),
    ("tversky_loss", {}, 0.1502537895),
    ("focal_tversky_loss", {}, 0.0005096849),
    ("cross_entropy", {}, 1.2029117308),
    ("class_weighted_cross_entropy", {}, 1.0529775294),
    ("class_weighted_cross_entropy", {"class_weights": [1.0, 2.0, 0.5]}, 1.3759580816),
    ("dice_cross_entropy_loss", {}, 1.5922979152),
]


def case(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (Z.clone(), Y.clone()) if name in BINARY_LOSSES else (ZM.clone(), YM.clone())


def test_every_loss_is_in_one_group() -> None:
    assert set(BINARY_LOSSES) | set(MULTICLASS_LOSSES) == set(LOSSES)
    assert {c[0] for c in HAND_CASES} == set(LOSSES)


@pytest.mark.parametrize(("name", "params", "expected"), HAND_CASES)
def test_hand_computed_values(name: str, params: dict, expected: float) -> None:
    logits, target = case(name)
    assert create_loss(name, **params)(logits, target).item() == pytest.approx(expected, rel=1e-5)


def random_case(name: str, background_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    if name in BINARY_LOSSES:
        target = (torch.rand(2, 9, 11, generator=g) > 0.8).long()
        logits = torch.randn(2, 1, 9, 11, generator=g)
    else:
        target = torch.randint(0, 4, (2, 9, 11), generator=g)
        logits = torch.randn(2, 4, 9, 11, generator=g)
    if background_only:
        target = torch.zeros_like(target)
    return logits, target


def perfect_logits(name: str, target: torch.Tensor) -> torch.Tensor:
    if name in BINARY_LOSSES:
        return 30.0 * (2.0 * target.float() - 1.0).unsqueeze(1)
    return 30.0 * torch.nn.functional.one_hot(target, 4).movedim(-1, 1).float()


@pytest.mark.parametrize("name", sorted(LOSSES))
class TestLossContract:
    def test_about_zero_on_a_perfect_prediction(self, name: str) -> None:
        _, target = random_case(name)
        assert create_loss(name)(perfect_logits(name, target), target).item() == pytest.approx(0.0, abs=1e-5)

    def test_finite_on_all_background_target(self, name: str) -> None:
        logits, target = random_case(name, background_only=True)
        logits.requires_grad_(True)
        loss = create_loss(name)(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
        perfect = perfect_logits(name, target)
        assert torch.isfinite(create_loss(name)(perfect, target))

    def test_gradients_reach_the_logits(self, name: str) -> None:
        logits, target = random_case(name)
        logits.requires_grad_(True)
        create_loss(name)(logits, target).backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0

    def test_bf16_logits_give_a_float32_loss(self, name: str) -> None:
        logits, target = random_case(name)
        expected = create_loss(name)(logits.bfloat16().float(), target)
        got = create_loss(name)(logits.bfloat16(), target)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected)

    def test_unknown_parameter_raises(self, name: str) -> None:
        with pytest.raises(ValueError, match="parameters"):
            create_loss(name, not_a_parameter=1)


def test_unknown_loss_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="binary_cross_entropy, binary_focal_loss"):
        create_loss("lovasz")


@pytest.mark.parametrize("name", BINARY_LOSSES)
def test_binary_target_forms_agree(name: str) -> None:
    logits, target = random_case(name)
    as_int = create_loss(name)(logits, target)
    as_float = create_loss(name)(logits, target.unsqueeze(1).float())
    torch.testing.assert_close(as_int, as_float)
    with pytest.raises(ValueError, match="does not fit"):
        create_loss(name)(logits, target[:, :5])


def test_multiclass_shape_errors() -> None:
    logits, target = random_case("cross_entropy")
    with pytest.raises(ValueError, match="integer"):
        create_loss("cross_entropy")(logits, target.float())
    with pytest.raises(ValueError, match="K >= 2"):
        create_loss("cross_entropy")(logits[:, :1], target)


def test_reduction_options() -> None:
    logits, target = random_case("focal_loss")
    per_pixel = focal_loss(logits, target, reduction="none")
    assert per_pixel.shape == logits.shape
    torch.testing.assert_close(focal_loss(logits, target, reduction="sum"), per_pixel.sum())
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(logits, target, reduction="max")


# --- agreement with MONAI where the definitions coincide ---
def monai_case() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return 2.0 * torch.randn(3, 1, 8, 10, generator=g), (torch.rand(3, 1, 8, 10, generator=g) > 0.7).float()


def test_focal_matches_monai() -> None:
    """TS-CNN eq. 1 with eps = 0 is MONAI's sigmoid focal loss: alpha on positives, 1 - alpha on negatives."""
    logits, target = monai_case()
    for alpha, gamma in [(0.9, 1.0), (0.25, 2.0)]:
        expected = FocalLoss(gamma=gamma, alpha=alpha)(logits, target)
        got = create_loss("focal_loss", alpha=alpha, gamma=gamma, eps=0.0)(logits, target)
        torch.testing.assert_close(got, expected)
        with_eps = create_loss("focal_loss", alpha=alpha, gamma=gamma)(logits, target)
        torch.testing.assert_close(with_eps, expected, atol=1e-5, rtol=1e-5)


def test_binary_focal_matches_monai_without_alpha() -> None:
    logits, target = monai_case()
    expected = FocalLoss(gamma=2.0, alpha=None)(logits, target)
    torch.testing.assert_close(create_loss("binary_focal_loss")(logits, target), expected)


@pytest.mark.parametrize("batch", [True, False])
def test_dice_matches_monai(batch: bool) -> None:
    logits, target = monai_case()
    expected = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0, batch=batch)(logits, target)
    torch.testing.assert_close(create_loss("soft_dice_loss", batch=batch)(logits, target), expected)


@pytest.mark.parametrize("batch", [True, False])
def test_tversky_matches_monai_with_swapped_names(batch: bool) -> None:
    """Ours: alpha weighs FN, beta FP (thesis); MONAI: alpha weighs FP, beta FN."""
    logits, target = monai_case()
    expected = TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7, smooth_nr=1.0, smooth_dr=1.0, batch=batch)(
        logits, target
    )
    got = create_loss("tversky_loss", alpha=0.7, beta=0.3, batch=batch)(logits, target)
    torch.testing.assert_close(got, expected)


def test_focal_tversky_is_tversky_to_the_power_gamma() -> None:
    logits, target = monai_case()
    tversky = create_loss("tversky_loss")(logits, target)
    torch.testing.assert_close(create_loss("focal_tversky_loss")(logits, target), tversky**4)
    torch.testing.assert_close(create_loss("focal_tversky_loss", gamma=1.0)(logits, target), tversky)


def test_dice_ce_matches_monai() -> None:
    logits, target = random_case("dice_cross_entropy_loss")
    monai = DiceCELoss(softmax=True, to_onehot_y=True, smooth_nr=1.0, smooth_dr=1.0, batch=True)
    torch.testing.assert_close(
        create_loss("dice_cross_entropy_loss")(logits, target), monai(logits, target[:, None])
    )


def test_class_weighted_ce_is_the_mean_of_class_means() -> None:
    logits, target = random_case("cross_entropy")
    per_pixel = create_loss("cross_entropy", reduction="none")(logits, target)
    expected = torch.stack([per_pixel[target == k].mean() for k in range(4)]).mean()
    torch.testing.assert_close(create_loss("class_weighted_cross_entropy")(logits, target), expected)


# --- Self-balancing focal loss (TS-CNN eq. 2) ---
def sbfl_case() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    target = torch.zeros(2, 1, 12, 12)
    target[0, 0, 3:5, 4:6] = 1.0
    target[1, 0, 8, 2] = 1.0
    return torch.randn(2, 1, 12, 12, generator=g), target


def sbfl_gradient(detach_beta: bool) -> torch.Tensor:
    logits, target = sbfl_case()
    logits.requires_grad_(True)
    self_balancing_focal_loss(logits, target, detach_beta=detach_beta).backward()
    return logits.grad


def test_sbfl_detached_gradient_equals_fixed_alpha_focal_gradient() -> None:
    logits, target = sbfl_case()
    positive, negative = focal_terms(logits, target, gamma=1.0, eps=1e-7)
    beta = (0.4 * negative.sum() / (negative.sum() + positive.sum()) + 0.5).item()
    assert 0.5 < beta < 0.9
    logits.requires_grad_(True)
    focal_loss(logits, target, alpha=beta, gamma=1.0, eps=1e-7).backward()
    torch.testing.assert_close(sbfl_gradient(detach_beta=True), logits.grad)


def test_sbfl_gradient_through_beta_differs() -> None:
    with_beta = sbfl_gradient(detach_beta=False)
    detached = sbfl_gradient(detach_beta=True)
    assert (with_beta - detached).abs().max() > 1e-6
    # Through beta, lesion pixels get a larger and background pixels a smaller push (here S0 > S1).
    _, target = sbfl_case()
    lesion = target.bool()
    assert with_beta[lesion].abs().sum() > detached[lesion].abs().sum()
    assert with_beta[~lesion].abs().sum() < detached[~lesion].abs().sum()


def test_sbfl_selects_pixels_by_ground_truth() -> None:
    """All-background target: SBFL1 = 0, so beta = 0.9 and SBFL = mean(0.1 * SBFL0)."""
    logits, _ = sbfl_case()
    target = torch.zeros_like(logits)
    _, negative = focal_terms(logits, target, gamma=1.0, eps=1e-7)
    torch.testing.assert_close(self_balancing_focal_loss(logits, target), (0.1 * negative).mean())
    # A confident lesion prediction on background is penalised, whatever y_pred says about the pixel.
    assert self_balancing_focal_loss(torch.full_like(logits, 5.0), target) > 0.4


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_take_pixelnet_sampled_pixels(name: str) -> None:
    """forward_pixels gives (B, N, K); transposed to (B, K, N) it is a 1D 'image' of N pixels."""
    g = torch.Generator().manual_seed(4)
    k = 1 if name in BINARY_LOSSES else 4
    logits = torch.randn(2, 50, k, generator=g).transpose(1, 2)
    target = torch.randint(0, max(k, 2), (2, 50), generator=g)
    assert torch.isfinite(create_loss(name)(logits, target))


def test_blob_loss_counts_every_lesion_once_whatever_its_size() -> None:
    target = torch.zeros(1, 16, 16, dtype=torch.long)
    target[0, 2:10, 2:10] = 1  # a large lesion (64 pixels), predicted
    target[0, 13, 13] = 1  # a one-pixel lesion, missed
    logits = torch.full((1, 1, 16, 16), -30.0)
    logits[0, 0, 2:10, 2:10] = 30.0
    global_dice = create_loss("soft_dice_loss")(logits, target).item()
    blob = blob_dice_loss(logits, target).item()
    assert global_dice < 0.02  # the missed pixel barely counts in the global Dice
    # lesion 1: Dice 1; lesion 2: 1/2 (the smoothing term alone)
    assert blob == pytest.approx(0.5 * (1.0 - 1.0 / 2.0), abs=1e-3)
    # predicting lesion 2 as well is no false positive for lesion 1: both blob Dice terms go to 1
    logits[0, 0, 13, 13] = 30.0
    assert blob_dice_loss(logits, target, smooth=1e-6).item() == pytest.approx(0.0, abs=1e-5)
    # a false positive away from both lesions counts against each of them
    logits[0, 0, 0, 15] = 30.0
    assert blob_dice_loss(logits, target, smooth=1e-6).item() > 0.1
