import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from facessl.augment import to_tensor
from facessl.config import Preprocessing
from facessl.data import cache, lfw
from facessl.errors import FacesslError
from facessl.models import BACKBONES, create_model
from facessl.models.resnet import ResNet18
from facessl.models.tinyvgg import TinyVGG
from facessl.ssl import METHODS, create_method, kmeans
from facessl.ssl.deepcluster import DeepCluster, cluster_features, fill_empty_clusters
from facessl.ssl.masked import MaskedMSELoss, MaskedPrediction, PatchMask
from facessl.ssl.rotation import QuarterTurns, rotate
from facessl.ssl.simclr import NTXentLoss, ViewAugmentation
from facessl.ssl.vicreg import VICRegLoss

MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
SIDE = 32  # the `faces` fixture's side: every registered backbone must take 32 px colour faces


@pytest.fixture(scope="module")
def faces(tiny_lfw, tmp_path_factory) -> torch.Tensor:
    """16 real LFW faces of the unlabelled pool, uint8 16 x 3 x 32 x 32."""
    with pytest.MonkeyPatch.context() as patch:  # keep the module's cache out of the user's
        patch.setenv("FACESSL_CACHE", str(tmp_path_factory.mktemp("cache")))
        built = cache.load_or_build(lfw.locate(tiny_lfw["folder"]), Preprocessing(128, 32),
                                    quiet=True)
        return to_tensor(built.take(tiny_lfw["manifest"]["unlabelled"][:16]))


def _options(name: str, images: torch.Tensor) -> dict:
    """Options that make each method fit a tiny batch of 32 px faces."""
    if name == "kmeans":
        labels, _ = kmeans.cluster_pixels(images.numpy(), clusters=3, seed=0)
        return {"labels": torch.from_numpy(labels)}
    if name == "deepcluster":
        return {"clusters": 3, "pca_dim": 8}
    if name == "masked":
        return {"input_size": 32}
    if name == "vicreg":
        return {"expander_dim": 64}  # fewer features than a tiny batch can decorrelate
    return {}


def _method(name: str, backbone, images: torch.Tensor, **options):
    method = create_method(name, backbone, MEAN, STD, **_options(name, images), **options)
    if name == "deepcluster":
        method.start_epoch(images, batch_size=8)
    return method


# ---------------------------------------------------------------- losses vs. naive references

def _naive_nt_xent(a, b, temperature):
    views = [F.normalize(v, dim=0) for v in torch.cat([a, b])]
    n, total = len(a), 0.0
    for i in range(2 * n):
        similarity = [math.exp(float(views[i] @ views[k]) / temperature) for k in range(2 * n)]
        others = sum(s for k, s in enumerate(similarity) if k != i)
        total += -math.log(similarity[(i + n) % (2 * n)] / others)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_formula(temperature):
    torch.manual_seed(0)
    a, b = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    got = NTXentLoss(temperature)(a, b).item()
    assert got == pytest.approx(_naive_nt_xent(a, b, temperature), rel=1e-9)


def test_nt_xent_is_low_when_partners_agree_and_others_differ():
    views = torch.eye(4)
    assert NTXentLoss(0.05)(views, views).item() < 1e-6
    assert NTXentLoss(0.05)(views, views.roll(1, 0)).item() > 10


def _naive_vicreg(a, b, lam, mu, nu, eps):
    n, d = a.shape
    invariance = sum(float(a[i, j] - b[i, j]) ** 2 for i in range(n) for j in range(d)) / (n * d)
    variance = covariance = 0.0
    for z in (a.tolist(), b.tolist()):
        mean = [sum(z[i][j] for i in range(n)) / n for j in range(d)]
        cov = [[sum((z[i][j] - mean[j]) * (z[i][k] - mean[k]) for i in range(n)) / (n - 1)
                for k in range(d)] for j in range(d)]
        variance += sum(max(0.0, 1 - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d / 2
        covariance += sum(cov[j][k] ** 2 for j in range(d) for k in range(d) if j != k) / d
    return lam * invariance + mu * variance + nu * covariance


@pytest.mark.parametrize("coefficients", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 2.0)])
def test_vicreg_matches_the_formula(coefficients):
    torch.manual_seed(1)
    # Small spread so some features fall under the variance hinge and some do not.
    a = torch.randn(6, 4, dtype=torch.float64) * torch.tensor([0.3, 0.8, 1.5, 2.0])
    b = a + 0.5 * torch.randn(6, 4, dtype=torch.float64)
    got = VICRegLoss(*coefficients, eps=1e-4)(a, b).item()
    assert got == pytest.approx(_naive_vicreg(a, b, *coefficients, 1e-4), rel=1e-9)


def test_masked_mse_scores_only_hidden_pixels():
    torch.manual_seed(2)
    prediction, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mask = (torch.rand(2, 1, 4, 4) < 0.5).float()
    squares = [float(prediction[n, c, y, x] - target[n, c, y, x]) ** 2
               for n in range(2) for c in range(3) for y in range(4) for x in range(4)
               if mask[n, 0, y, x] == 1]
    loss = MaskedMSELoss()
    assert loss(prediction, target, mask).item() == pytest.approx(sum(squares) / len(squares))
    shown_changed = torch.where(mask.bool(), prediction, prediction + 100)
    assert loss(shown_changed, target, mask).item() == pytest.approx(sum(squares) / len(squares))


def test_patch_mask_hides_whole_patches_at_the_ratio():
    images = torch.rand(3, 3, 32, 32) + 1  # no pixel is 0 before masking
    masked, target, mask = PatchMask(patch_size=8, ratio=0.25)(images)
    assert torch.equal(target, images) and mask.shape == (3, 1, 32, 32)
    patches = mask[:, 0, ::8, ::8]
    assert patches.sum(dim=(1, 2)).tolist() == [4, 4, 4]  # 25% of the 16 patches
    assert torch.equal(mask, patches.repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None])
    assert torch.equal(masked == 0, mask.bool().expand_as(images))
    assert torch.equal(masked[mask.expand_as(images) == 0], images[mask.expand_as(images) == 0])


def test_rotation_labels_say_how_each_image_was_turned():
    images = torch.arange(5 * 2 * 3 * 3, dtype=torch.float32).view(5, 2, 3, 3)  # no symmetry
    turns = torch.tensor([0, 1, 2, 3, 1])
    rotated = rotate(images, turns)
    for i, k in enumerate(turns.tolist()):
        assert torch.equal(rotated[i], torch.rot90(images[i], k, dims=(-2, -1)))
    every, labels = QuarterTurns(all_rotations=True)(images)
    assert labels.tolist() == [0, 1, 2, 3] * 5
    for row, k in enumerate(labels.tolist()):
        assert torch.equal(every[row], torch.rot90(images[row // 4], k, dims=(-2, -1)))
    one, labels = QuarterTurns(all_rotations=False)(images)
    assert len(one) == 5 and set(labels.tolist()) <= {0, 1, 2, 3}
    for i, k in enumerate(labels.tolist()):
        assert torch.equal(one[i], torch.rot90(images[i], k, dims=(-2, -1)))


# ---------------------------------------------------------------- argument validation

@pytest.mark.parametrize("build, message", [
    (lambda: NTXentLoss(0.0), r"temperature must be > 0; got 0.0"),
    (lambda: VICRegLoss(variance=-1.0), r"variance coefficient must be >= 0; got -1.0"),
    (lambda: PatchMask(ratio=1.0), r"ratio is the hidden fraction of patches; got 1.0"),
    (lambda: ViewAugmentation(MEAN, STD, crop_scale=(0.0, 1.0)), r"crop_scale .* got \(0.0, 1.0\)"),
    (lambda: ViewAugmentation(MEAN, STD, blur_p=2.0), r"blur_p is a probability; got 2.0"),
    (lambda: MaskedPrediction(TinyVGG(1, input_size=32), MEAN, STD, input_size=30),
     r"patch_size must divide input_size; got patch_size 8 and input_size 30"),
    (lambda: DeepCluster(TinyVGG(1, input_size=32), MEAN, STD, clusters=1),
     r"clusters must be >= 2; got 1"),
])
def test_bad_arguments_say_what_was_given(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_losses_refuse_mismatched_batches():
    with pytest.raises(ValueError, match=r"got \(4, 3\) and \(4, 2\)"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"N >= 2; got \(1, 3\)"):
        VICRegLoss()(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match=r"mask N x 1 x H x W"):
        MaskedMSELoss()(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.ones(2, 4, 4))


def test_masked_prediction_refuses_images_of_another_size(faces):
    method = MaskedPrediction(TinyVGG(1, input_size=32), MEAN, STD, input_size=64)
    with pytest.raises(ValueError, match="built for 64 px images .* got 32x32"):
        method(faces[:2], torch.arange(2))


def test_unknown_method_lists_the_valid_names():
    with pytest.raises(FacesslError, match="unknown pretext method 'byol'; expected one of: "
                       "kmeans, deepcluster, rotation, masked, simclr, vicreg"):
        create_method("byol", TinyVGG(1, input_size=32), MEAN, STD)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_every_registered_name_builds_its_own_method_and_one_step_trains_it(faces):
    """Each name of the registry, built by `create_method` around the same seeded TinyVGG on
    the same real faces: a method of its own (no two names give the same loss, as two
    entries of one class would), whose loss is one to minimise (every method's is a
    cross-entropy, a squared error or a sum of hinges and squares: positive, so a loss of
    the wrong sign fails) and whose one SGD step moves the backbone's weights and lowers
    that loss on the same draw of views, masks and turns (a loss cut from the backbone
    fails)."""
    losses = {}
    for name in METHODS:
        torch.manual_seed(0)
        backbone = TinyVGG(num_classes=1, input_size=32)
        method = _method(name, backbone, faces)
        trunk = {n: p.detach().clone() for n, p in backbone.named_parameters()
                 if not n.startswith("head.")}
        optimizer = torch.optim.SGD(method.parameters(), lr=1e-2)

        def loss_on_one_draw(method=method):
            torch.manual_seed(1)  # the same augmentations each time
            return method(faces, torch.arange(len(faces)))

        before = loss_on_one_draw()
        optimizer.zero_grad()
        before.backward()
        optimizer.step()
        with torch.no_grad():
            after = loss_on_one_draw().item()
        assert 0 < after < before.item(), (name, before.item(), after)
        assert any(not torch.equal(p, trunk[n]) for n, p in backbone.named_parameters()
                   if n in trunk), name
        losses[name] = round(before.item(), 6)
    assert len(set(losses.values())) == len(METHODS), losses


# ---------------------------------------------------------------- DeepCluster's clusters

@pytest.mark.parametrize("donor_points", [
    [[0.0, 0.0]] * 4,  # duplicates: no perturbation tells them apart
    [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]],  # spread: split by the perturbation
])
def test_an_empty_cluster_takes_points_from_a_populated_one(donor_points):
    points = np.array(donor_points + [[5.0, 5.0]])
    labels = np.array([0, 0, 0, 0, 1])
    centroids = np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0]])  # cluster 2 is empty
    filled = fill_empty_clusters(points, labels, centroids, np.random.default_rng(0))
    assert filled[4] == 1  # a cluster of one point has none to spare
    assert (filled[:4] == 0).sum() >= 1 and (filled[:4] == 2).sum() >= 1


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_more_clusters_than_distinct_points_still_fills_every_cluster():
    # 3 distinct feature vectors, 4 copies each: k-means alone can use at most 3 of the 5
    # clusters (copies always share a label), so two must be re-seeded.
    features = np.repeat(np.random.default_rng(3).normal(size=(3, 16)), 4, axis=0)
    labels = cluster_features(features, clusters=5, pca_dim=8, seed=0)
    assert np.bincount(labels, minlength=5).min() >= 1


class ColourMeans(nn.Module):
    """A backbone whose embedding is each image's mean colour: copies embed identically."""

    embedding_dim = 3

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_deepcluster_reclusters_reseeds_and_resets_its_head(faces):
    torch.manual_seed(0)
    backbone = ColourMeans()
    method = DeepCluster(backbone, MEAN, STD, clusters=5, pca_dim=8, augment="none")
    with torch.no_grad():
        method.head.weight.zero_()
        method.head.bias.zero_()
    images = faces[:3].repeat(4, 1, 1, 1)
    # The case: 3 distinct embeddings for 5 clusters, so k-means leaves at least 2 empty.
    assert len(np.unique(method._features(images, batch_size=5), axis=0)) == 3
    weights = method.start_epoch(images, batch_size=5)
    labels = method.labels_.numpy()
    assert np.bincount(labels, minlength=5).min() >= 1
    per_cluster = np.bincount(labels, weights=weights.numpy(), minlength=5)
    assert np.allclose(per_cluster, 0.2)  # a weighted draw is uniform over clusters
    assert method.head.weight.abs().sum() > 0  # re-initialised
    # forward reads the pseudo label of each row by its position in the training set
    index = torch.tensor([7, 0, 11])
    expected = F.cross_entropy(method.head(backbone.embed((images[index].float() / 255 - 0.5)
                                                          / 0.5)), method.labels_[index])
    assert method(images[index], index).item() == pytest.approx(expected.item(), rel=1e-5)
    before = method.head.weight.clone()
    method.start_epoch(images, batch_size=5)
    assert not torch.equal(method.head.weight, before)


def test_deepcluster_embeds_without_augmentation_in_inference_mode(faces):
    backbone = ResNet18(1, input_size=32)
    method = DeepCluster(backbone, MEAN, STD, clusters=2)
    features = method._features(faces[:4], batch_size=3)
    assert backbone.training  # put back as it was
    backbone.eval()
    with torch.no_grad():
        assert np.allclose(features, backbone.embed((faces[:4].float() / 255 - 0.5) / 0.5),
                           atol=1e-5)


def test_deepcluster_says_what_to_do_without_labels_or_with_too_few_images(faces):
    method = DeepCluster(TinyVGG(1, input_size=32), MEAN, STD, clusters=20)
    with pytest.raises(RuntimeError, match=r"call start_epoch\(images, batch_size\)"):
        method(faces[:2], torch.arange(2))
    with pytest.raises(ValueError, match="got 16 images for 20 clusters"):
        method.start_epoch(faces, batch_size=8)


def test_kmeans_method_learns_the_given_labels_at_each_row(faces):
    labels = torch.tensor([0, 1, 2, 1] * 4)
    backbone = TinyVGG(1, input_size=32)
    method = create_method("kmeans", backbone, MEAN, STD, labels=labels)
    assert method.head.out_features == 3
    index = torch.tensor([5, 2, 9])
    expected = F.cross_entropy(method.head(backbone.embed((faces[index].float() / 255 - 0.5)
                                                          / 0.5)), labels[index])
    assert method(faces[index], index).item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match="one non-negative integer cluster id per training row"):
        create_method("kmeans", backbone, MEAN, STD, labels=torch.tensor([0.5, 1.0]))


# ---------------------------------------------------------------- every method, every backbone

@pytest.mark.parametrize("backbone_name", list(BACKBONES))
@pytest.mark.parametrize("name", list(METHODS))
def test_one_training_step_reaches_the_backbone(name, backbone_name, faces):
    """Every pretext method on every backbone of the registry (`facessl.models.BACKBONES`),
    untrained, on 3-channel 32 px faces (EfficientNet-Lite0's five stride-2 stages still
    leave it a 1 x 1 map)."""
    torch.manual_seed(0)
    try:
        backbone = create_model(backbone_name, 1, SIDE, pretrained=False)
    except FacesslError as exc:
        pytest.skip(f"{backbone_name} cannot take {SIDE} px colour faces: {exc}")
    images = faces[:4]
    method = _method(name, backbone, images)
    loss = method(images, torch.arange(4))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    trunk = [p for n, p in backbone.named_parameters() if not n.startswith("head.")]
    assert all(p.grad is not None for p in trunk)
    assert any(p.grad.abs().sum() > 0 for p in trunk)
    own = [p for n, p in method.named_parameters() if not n.startswith("backbone.")]
    assert own and all(p.grad is not None for p in own)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", list(METHODS))
def test_the_loss_falls_on_real_faces(name, faces):
    torch.manual_seed(0)
    # Strong views of an untrained network hold the two-view losses near their start for
    # longer than a test can wait (the invariance term keeps the features small); gentle
    # views show within 20 steps that the heads, losses and backbone learn together.
    gentle = {"crop_scale": (0.9, 1.0), "jitter_p": 0.0, "grayscale_p": 0.0, "blur_p": 0.0}
    options = gentle if name in ("simclr", "vicreg") else {}
    method = _method(name, TinyVGG(num_classes=1, input_size=32), faces, **options)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    index = torch.arange(len(faces))
    losses = []
    for _ in range(20):
        loss = method(faces, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.8 * first, losses
