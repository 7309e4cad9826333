"""OOD scores, detection metrics, the competition score, calibration and the (logits, include) wrapper."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve
from torch import nn

from cityseg import ood
from cityseg.unet import UNet


# ------------------------------------------------------------------ detection metrics
def test_perfect_separation():
    sid, sood = np.linspace(0, 1, 50), np.linspace(2, 3, 30)
    assert ood.auroc(sid, sood) == 1.0
    assert ood.fpr_at_tpr(sid, sood) == 0.0
    assert ood.aupr_out(sid, sood) == pytest.approx(1.0)
    # Reversed: every OOD image looks more ID than every ID image.
    assert ood.auroc(sood, sid) == 0.0
    assert ood.fpr_at_tpr(sood, sid) == 1.0


def test_identical_distributions():
    s = np.arange(100, dtype=float)
    assert ood.auroc(s, s) == pytest.approx(0.5)
    # 95% of ID accepted at t = 94 -> exactly the 95 OOD images with score <= 94 accepted.
    assert ood.fpr_at_tpr(s, s) == pytest.approx(0.95)
    assert ood.aupr_out(s, s) == pytest.approx(0.5, abs=0.02)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=4000), rng.normal(size=4000)
    assert ood.auroc(a, b) == pytest.approx(0.5, abs=0.03)
    assert ood.fpr_at_tpr(a, b) == pytest.approx(0.95, abs=0.02)
    assert ood.aupr_out(a, b) == pytest.approx(0.5, abs=0.03)


def test_fpr95_and_auroc_hand_case():
    sid = np.arange(1, 21, dtype=float)  # 20 ID images: 95% accepted at t = 19
    sood = np.array([0.5, 18.5, 19.0, 19.5, 25.0])
    assert ood.fpr_at_tpr(sid, sood) == pytest.approx(3 / 5)  # 0.5, 18.5 and the tie at 19
    assert ood.fpr_at_tpr(sid, sood, tpr=0.9) == pytest.approx(1 / 5)  # t = 18
    assert ood.fpr_at_tpr(sid, sood, tpr=1.0) == pytest.approx(4 / 5)  # t = 20
    # AUROC = P(OOD score > ID score): 1.5 beats 0 and 1, 3 beats all three -> 5/6.
    assert ood.auroc([0, 1, 2], [1.5, 3]) == pytest.approx(5 / 6)
    # AUPR-out by hand: ranking 3(O) 2(I) 1.5(O) 1 0 -> precision 1 at recall 0.5, 2/3 at recall 1.
    assert ood.aupr_out([0, 1, 2], [1.5, 3]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_fpr95_matches_roc_curve_on_continuous_scores():
    rng = np.random.default_rng(1)
    sid, sood = rng.normal(0, 1, 300), rng.normal(1.5, 1, 200)
    # ID-positive ROC on -score: FPR at the first point where TPR >= 0.95.
    y = np.r_[np.ones(sid.size), np.zeros(sood.size)]
    fpr, tpr, _ = roc_curve(y, -np.r_[sid, sood], drop_intermediate=False)
    expected = fpr[np.searchsorted(tpr, 0.95, side="left")]
    assert ood.fpr_at_tpr(sid, sood) == pytest.approx(expected)
    # AUROC = Mann-Whitney pair count P(OOD > ID).
    assert ood.auroc(sid, sood) == pytest.approx((sood[:, None] > sid[None, :]).mean())


def test_metric_input_errors():
    with pytest.raises(ValueError, match="scores_id"):
        ood.auroc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        ood.fpr_at_tpr([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="tpr"):
        ood.fpr_at_tpr([0.0], [1.0], tpr=0.0)


# ------------------------------------------------------------------ competition score
def test_competition_score_bookkeeping():
    dice = [0.8, 0.6, 0.4]
    # ID #2 refused (counts 0, stays in the mean); OOD #1 and #4 accepted (count 0); #2, #3 refused (left out).
    got = ood.competition_ood_score(dice, [True, False, True], [True, False, False, True])
    assert got == pytest.approx((0.8 + 0.0 + 0.4 + 0 + 0) / 5)
    assert ood.competition_ood_score(dice, [True] * 3, [False] * 4) == pytest.approx(0.6)
    assert ood.competition_ood_score(dice, [False] * 3, [False] * 4) == 0.0
    assert ood.accept_all_score(dice, 4) == pytest.approx(1.8 / 7)
    assert ood.accept_all_score(dice, 4) == pytest.approx(ood.competition_ood_score(dice, [1, 1, 1], [1] * 4))
    assert ood.oracle_score(dice) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="include_id"):
        ood.competition_ood_score(dice, [True, True], [])
    with pytest.raises(ValueError, match="dice_id"):
        ood.competition_ood_score([1.2], [True], [])


# ------------------------------------------------------------------ calibration
def test_calibrate_hand_case():
    # Cuts: 0.1 -> 1/3, 0.2 -> 2/3, 0.25 -> 2/4, 0.3 -> 3/4, 0.9 -> 3/5, inf -> 3/5.
    t, v = ood.calibrate_threshold([0.1, 0.2, 0.3], [1.0, 1.0, 1.0], [0.25, 0.9])
    assert (t, v) == (0.3, pytest.approx(0.75))
    # Tie: accepting the Dice-0 ID image at 0.5 costs nothing -> the more permissive 0.5 wins over 0.1.
    t, v = ood.calibrate_threshold([0.1, 0.5], [1.0, 0.0], [0.9])
    assert (t, v) == (0.5, pytest.approx(0.5))
    # OOD scores below every ID score: nothing to gain by refusing -> accept all (+inf).
    t, v = ood.calibrate_threshold([0.5, 0.6], [1.0, 0.5], [0.1])
    assert t == math.inf and v == pytest.approx(1.5 / 3)
    # All Dice zero: every cut scores 0, the tie goes to +inf rather than -inf.
    assert ood.calibrate_threshold([0.1], [0.0], [0.2]) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="finite"):
        ood.calibrate_threshold([0.1, np.inf], [1.0, 1.0], [0.2])


def _brute_force(sid, dice, sood):
    cands = np.r_[-np.inf, np.unique(np.r_[sid, sood]), np.inf]
    vals = np.array([ood.competition_ood_score(dice, sid <= t, sood <= t) for t in cands])
    best = vals.max()
    return cands[np.flatnonzero(np.isclose(vals, best, rtol=0, atol=1e-12))[-1]], best


@pytest.mark.parametrize("seed", range(6))
def test_calibrate_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_id, n_ood = rng.integers(1, 60), rng.integers(0, 60)
    # Rounded scores force ties between and within groups; some Dice are exactly 0.
    sid = np.round(rng.normal(0, 1, n_id), 1)
    sood = np.round(rng.normal(rng.uniform(0, 2), 1, n_ood), 1)
    dice = np.where(rng.random(n_id) < 0.1, 0.0, rng.uniform(0.2, 0.9, n_id))
    t, v = ood.calibrate_threshold(sid, dice, sood)
    t_bf, v_bf = _brute_force(sid, dice, sood)
    assert v == pytest.approx(v_bf, abs=1e-12)
    assert t == t_bf
    assert ood.competition_ood_score(dice, sid <= t, sood <= t) == pytest.approx(v)
    assert v >= ood.accept_all_score(dice, n_ood) - 1e-12


# ------------------------------------------------------------------ logit scores
def _confident_and_flat(b=2, c=19, h=8, w=12):
    conf = torch.zeros(b, c, h, w)
    conf[:, 3] = 10.0
    flat = torch.zeros(b, c, h, w)
    return conf, flat


def test_pixel_scores_shapes_and_signs():
    conf, flat = _confident_and_flat()
    ps_c, ps_f = ood.pixel_scores(conf, 1.0), ood.pixel_scores(flat, 1.0)
    assert set(ps_c) == set(ood.PIXEL_SCORES)
    for name in ood.PIXEL_SCORES:
        assert ps_c[name].shape == (2, 8, 12)
        assert (ps_c[name] < ps_f[name]).all(), name
    assert torch.allclose(ps_f["msp"], torch.full((2, 8, 12), 1 - 1 / 19))
    assert torch.allclose(ps_f["entropy"], torch.full((2, 8, 12), math.log(19)))
    assert torch.allclose(ps_f["energy"], torch.full((2, 8, 12), -math.log(19)))
    assert torch.allclose(ps_c["max_logit"], torch.full((2, 8, 12), -10.0))
    # Temperature: energy = -T * logsumexp(z / T).
    z = torch.randn(1, 5, 3, 4)
    e = ood.pixel_score(z, "energy", temperature=2.0)
    assert torch.allclose(e, -2.0 * torch.logsumexp(z / 2.0, dim=1))
    # The batched dict and the single-score function (used by OODSegmenter) agree.
    for name, v in ood.pixel_scores(z, temperature=2.0).items():
        assert torch.allclose(v, ood.pixel_score(z, name, temperature=2.0), atol=1e-6), name
    # A hand case with two classes, logits (0, ln 3): softmax (1/4, 3/4).
    z2 = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)
    got = ood.pixel_scores(z2, 1.0)
    assert got["msp"].item() == pytest.approx(0.25)
    assert got["max_logit"].item() == pytest.approx(-math.log(3.0))
    assert got["energy"].item() == pytest.approx(-math.log(4.0))  # -log(e^0 + e^ln3)
    assert got["entropy"].item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    with pytest.raises(ValueError, match="logits"):
        ood.pixel_scores(torch.zeros(19, 8, 8), 1.0)
    with pytest.raises(ValueError, match="score name"):
        ood.pixel_score(z2, "softmax", 1.0)


def test_image_scores_keys_shapes_and_percentile():
    conf, flat = _confident_and_flat()
    logits = torch.cat([conf[:1], flat[:1]])  # image 0 confident, image 1 flat
    sc = ood.image_scores(logits, percentile=95, temperature=1.0)
    assert set(sc) == {f"{n}_{a}" for n in ood.PIXEL_SCORES for a in ("mean", "p95")}
    for name, v in sc.items():
        assert v.shape == (2,) and v[0] < v[1], name
    # The percentile equals torch.quantile (linear interpolation) on a random map.
    z = torch.randn(3, 19, 16, 20)
    got = ood.image_scores(z, percentile=95, temperature=1.0)["entropy_p95"]
    ref = torch.quantile(ood.pixel_score(z, "entropy", 1.0).flatten(1), 0.95, dim=1)
    assert torch.allclose(got, ref, atol=1e-6)
    assert "msp_p99_5" in ood.image_scores(z, percentile=99.5, temperature=1.0)
    # p50 of the 4 values 1..4 (linear interpolation) is 2.5; the mean is 2.5 too, p75 is 3.25.
    row = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    assert ood.aggregate(row, "p50").item() == 2.5 and ood.aggregate(row, "p75").item() == 3.25
    assert ood.parse_method("msp_p99_5") == ("msp", "p99_5")
    with pytest.raises(ValueError, match="method"):
        ood.parse_method("softmax_p95")


# ------------------------------------------------------------------ Mahalanobis
def test_mahalanobis_distance_hand_cases():
    # Covariance [[2, 1], [1, 2]]: precision = 1/3 [[2, -1], [-1, 2]].
    sc = ood.MahalanobisScorer()
    sc.mean, sc.precision = np.zeros(2), np.array([[2.0, -1.0], [-1.0, 2.0]]) / 3
    mean, whit = sc.torch_buffers(torch.float64)
    pts = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    # d^2 = x P x: (2 - 1 - 1 + 2) / 3 = 2/3 along the correlation, (2 + 1 + 1 + 2) / 3 = 2 across it.
    d = ood.mahalanobis_distance(pts, mean, whit).numpy()
    np.testing.assert_allclose(d, [math.sqrt(2 / 3), math.sqrt(2), 0.0], rtol=1e-12)
    # Fit: the corners of a 2x2 square have mean (1, 1) and empirical covariance I, which Ledoit-Wolf
    # shrinks towards trace/d * I = I: the fitted distance of (4, 5) is |(3, 4)| = 5.
    fitted = ood.MahalanobisScorer().fit(np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]]))
    np.testing.assert_allclose(fitted.mean, [1.0, 1.0])
    mean, whit = fitted.torch_buffers(torch.float64)
    assert ood.mahalanobis_distance(torch.tensor([[4.0, 5.0]], dtype=torch.float64), mean, whit).item() == pytest.approx(5.0)
    # More dimensions than samples still fits thanks to shrinkage.
    rng = np.random.default_rng(0)
    mean, whit = ood.MahalanobisScorer().fit(rng.normal(size=(10, 40))).torch_buffers()
    assert torch.isfinite(ood.mahalanobis_distance(torch.randn(3, 40), mean, whit)).all()
    # A precision singular to rounding (a fit on a few frames; Cholesky raised LinAlgError here): the direction
    # it ignores adds nothing, a rounding-negative eigenvalue is taken as 0.
    sc.mean, sc.precision = np.zeros(2), np.array([[1.0, 0.0], [0.0, -1e-18]])
    mean, whit = sc.torch_buffers(torch.float64)
    assert ood.mahalanobis_distance(torch.tensor([[3.0, 4.0]], dtype=torch.float64), mean, whit).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="2 samples"):
        ood.MahalanobisScorer().fit(np.zeros((1, 3)))
    with pytest.raises(RuntimeError, match="fit"):
        ood.MahalanobisScorer().torch_buffers()


class _HeadExplodes(nn.Module):
    """A net whose head raises: pooled_features must stop the forward before reaching it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 7, 3, stride=2, padding=1)
        self.head = nn.Conv2d(7, 19, 1)

    def forward(self, x):
        self.body(x)
        raise AssertionError("decoder ran")  # pragma: no cover


def test_pooled_features_unet_hook_and_custom_layer():
    torch.manual_seed(0)
    net = UNet(width=0.125).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = ood.pooled_features(net, x)
    ref = net.down4(net.down3(net.down2(net.down1(net.inc(x))))).mean(dim=(2, 3))
    assert feats.shape == (2, 64) and not feats.requires_grad
    assert torch.allclose(feats, ref, atol=1e-6)
    head = _HeadExplodes()
    f = ood.pooled_features(head, x, layer="body")  # the forward stops right after "body"
    assert torch.allclose(f, head.body(x).mean(dim=(2, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="layer"):
        ood.pooled_features(_HeadExplodes(), x)  # no default layer in this net
    with pytest.raises(ValueError, match="nope"):
        ood.pooled_features(net, x, layer="nope")


def test_pooled_features_smp():
    smp = pytest.importorskip("segmentation_models_pytorch")
    net = smp.create_model("Unet", encoder_name="resnet18", encoder_weights=None, classes=19).eval()
    x = torch.randn(1, 3, 64, 64)
    feats = ood.pooled_features(net, x)
    assert feats.shape == (1, 512)
    with torch.no_grad():
        assert torch.allclose(feats, net.encoder(x)[-1].mean(dim=(2, 3)))


# ------------------------------------------------------------------ OODSegmenter
def _roundtrip(sd):
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_ood_segmenter_logit_method_and_state_dict():
    torch.manual_seed(0)
    seg = UNet(width=0.125).eval()
    x = torch.randn(3, 3, 32, 32)
    model = ood.OODSegmenter(seg, method="entropy_p95", temperature=1.5).eval()
    with torch.no_grad():
        logits, include = model(x)
        _, scores = model.score(x)
    assert logits.shape == (3, 19, 32, 32) and logits.dtype == torch.float32
    assert include.shape == (3,) and include.dtype == torch.bool and include.all()  # threshold +inf
    assert torch.allclose(scores, ood.image_scores(logits, 95, temperature=1.5)["entropy_p95"])
    mid = float(scores.median())
    model.threshold.fill_(mid)
    with torch.no_grad():
        assert torch.equal(model(x)[1], scores <= mid)
    # A fresh wrapper (built with another method) takes the method, temperature and threshold from the state_dict.
    fresh = ood.OODSegmenter(UNet(width=0.125), method="msp_mean", temperature=1.0).eval()
    fresh.load_state_dict(_roundtrip(model.state_dict()), strict=True)
    assert fresh.method == "entropy_p95" and float(fresh.temperature) == 1.5
    with torch.no_grad():
        l2, inc2 = fresh(x)
    assert torch.equal(inc2, scores <= mid) and torch.allclose(l2, logits)
    model.threshold.fill_(-math.inf)
    with torch.no_grad():
        assert not model(x)[1].any()


def test_ood_segmenter_mahalanobis_state_dict():
    torch.manual_seed(0)
    seg = UNet(width=0.125).eval()
    fit_x = torch.randn(40, 3, 32, 32)
    scorer = ood.MahalanobisScorer().fit(ood.pooled_features(seg, fit_x))
    model = ood.OODSegmenter(seg, method="mahalanobis", temperature=1.0, feature_layer="down4").eval()
    model.set_mahalanobis(scorer)
    x = torch.cat([torch.randn(2, 3, 32, 32), 5 + 3 * torch.randn(2, 3, 32, 32)])  # last two shifted
    with torch.no_grad():
        _, scores = model.score(x)
        # By hand: the bottleneck's mean feature, then sqrt(diff P diff^T) with the fitted precision P
        # (no whitening factor involved).
        feats = seg.down4(seg.down3(seg.down2(seg.down1(seg.inc(x))))).mean(dim=(2, 3)).double().numpy()
    diff = feats - scorer.mean
    expected = np.sqrt(np.einsum("nd,de,ne->n", diff, scorer.precision, diff))
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-3)
    assert scores[2:].min() > scores[:2].max()
    model.threshold.fill_(float(scores[:2].max()))
    fresh = ood.OODSegmenter(UNet(width=0.125), method="energy_p95", temperature=1.0)  # empty Mahalanobis buffers
    fresh.load_state_dict(_roundtrip(model.state_dict()), strict=True)
    fresh.eval()
    assert fresh.method == "mahalanobis" and fresh.maha_whitening.shape == (64, 64)
    with torch.no_grad():
        logits, include = fresh(x)
        assert torch.equal(logits, seg(x))
    assert include.tolist() == [True, True, False, False]
    with pytest.raises(RuntimeError, match="set_mahalanobis"):
        ood.OODSegmenter(seg, method="mahalanobis", temperature=1.0)(x)


def test_feature_tap_keeps_the_latest_pass_and_stops_when_asked():
    torch.manual_seed(0)
    net = UNet(width=0.125).eval()
    a, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ref = net.down4(net.down3(net.down2(net.down1(net.inc(b))))).mean(dim=(2, 3))
        with ood.FeatureTap(net, "down4") as tap:
            net(a)
            net(b)
            feats = tap.pop()  # the latest forward's features, then cleared
            with pytest.raises(RuntimeError, match="not called"):
                tap.pop()
    assert torch.allclose(feats, ref, atol=1e-6)
    assert not net.down4._forward_hooks  # removed on exit
    head = _HeadExplodes()
    with ood.FeatureTap(head, "body", stop=True) as tap:
        assert tap.run(head, a) is None  # stopped before the head raised
    assert torch.allclose(tap.pop(), head.body(a).mean(dim=(2, 3)), atol=1e-6)


def test_default_feature_layer_exists_in_our_nets():
    from cityseg.fastscnn import FastSCNN

    x = torch.rand(1, 3, 64, 64)
    unet, fast = UNet(width=0.125).eval(), FastSCNN(width=0.25).eval()
    with torch.no_grad():
        ref_unet = unet.down4(unet.down3(unet.down2(unet.down1(unet.inc(x))))).mean(dim=(2, 3))
        ref_fast = fast.global_features(fast.downsample(x)).mean(dim=(2, 3))
    assert torch.allclose(ood.pooled_features(unet, x), ref_unet, atol=1e-6)  # "down4"
    assert torch.allclose(ood.pooled_features(fast, x), ref_fast, atol=1e-6)  # "global_features"
