"""BEYOND adversarial-input detection (labelless.audit.detector): the metrics against hand
computations, the neighbour path against an identity view, and the score against PGD examples
on an encoder trained on digits for a few seconds."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from labelless.audit.adversarial import AttackBudget, pgd_embedding
from labelless.audit.detector import (
    BEYOND_VIEW,
    BeyondScores,
    beyond_scores,
    detection_metrics,
    either_rule,
    fit_embedding_classifier,
)
from labelless.audit.pixels import PixelEncoder, embed_pixels, unit_images
from labelless.augment.spec import ViewSpec
from labelless.augment.views import ViewPipeline
from labelless.backbones import create_backbone
from labelless.data import load_dataset
from labelless.encoders import resolve_preprocessing
from labelless.errors import ConfigError, DataError

# Digits are 8 px and not mirror-symmetric: milder crops than BEYOND's CIFAR-10 (0.2, 1) and no
# flips, so that a clean digit's neighbours are still that digit.
DIGIT_VIEW = replace(BEYOND_VIEW, scale=(0.7, 1.0), hflip_p=0.0)
# L-inf radius: 0.2 of the pixel range, under the usual MNIST budget of 0.3 (Madry et al. 2018).
# The 8x8 digits have 17 grey levels, so 8/255 (half of one level) barely moves the embedding.
EPSILON = 0.2
AUROC_BOUND = 0.9  # measured 0.948-0.974 over seeds 0-7 (combined), 0.959-0.984 (similarity)


def _digits_encoder(seed: int) -> tuple[PixelEncoder, torch.Tensor, torch.Tensor]:
    """small_cnn (width 8) at 8 px trained 300 steps with cross-entropy on DIGIT_VIEW views
    (augmentation-invariant, as BEYOND's self-supervised encoder is); about 2 s on one thread."""
    train = load_dataset("digits").train
    images, labels = unit_images(train.samples), torch.as_tensor(train.labels)
    torch.manual_seed(seed)
    mean, std = train.meta["mean"], train.meta["std"]
    encoder = create_backbone("small_cnn", in_channels=1, width=8, input_size=8, mean=mean, std=std)
    head = torch.nn.Linear(encoder.embed_dim, 10)
    views = ViewPipeline([replace(DIGIT_VIEW, size=8)], mean, std)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    encoder.train()
    for _ in range(300):
        rows = torch.randint(len(images), (128,), generator=generator)
        loss = F.cross_entropy(head(encoder(views(images[rows], generator)[0])), labels[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return PixelEncoder(encoder.eval(), resolve_preprocessing(encoder.meta)), images, labels


@pytest.mark.parametrize("seed", [0, 1])
def test_beyond_score_separates_pgd_examples_from_clean_ones(seed, one_thread):
    model, train_images, train_labels = _digits_encoder(seed)
    classifier = fit_embedding_classifier(embed_pixels(model, train_images), train_labels)
    test = load_dataset("digits").test
    clean = unit_images(test.samples)[:200]
    accuracy = classifier(embed_pixels(model, clean)) == torch.as_tensor(test.labels[:200])
    assert accuracy.float().mean() > 0.9
    adversarial = pgd_embedding(model, clean, AttackBudget(EPSILON, 10), seed=seed)
    assert (adversarial - clean).abs().max() <= EPSILON + 1e-6
    options = {"classifier": classifier, "num_neighbours": 20, "view": DIGIT_VIEW}
    on_clean = beyond_scores(model, clean, seed=seed, **options)
    on_adversarial = beyond_scores(model, adversarial, seed=seed + 1, **options)
    metrics = detection_metrics(on_clean.score, on_adversarial.score)
    assert metrics.auroc > AUROC_BOUND, metrics
    assert metrics.tpr > 0.5 and metrics.fpr_achieved <= 0.05
    # Both of BEYOND's relations break: neighbours' embeddings and labels disagree.
    assert on_adversarial.similarity.mean() < on_clean.similarity.mean() - 0.1
    assert on_adversarial.consistency.mean() < on_clean.consistency.mean() - 0.3
    # Without labels: representation similarity alone.
    unlabelled = {"num_neighbours": 20, "view": DIGIT_VIEW}
    alone = detection_metrics(
        beyond_scores(model, clean, seed=seed, **unlabelled).score,
        beyond_scores(model, adversarial, seed=seed + 1, **unlabelled).score,
    )
    assert alone.auroc > AUROC_BOUND, alone


def _random_encoder(channels: int = 1) -> PixelEncoder:
    torch.manual_seed(0)
    encoder = create_backbone("small_cnn", in_channels=channels, width=4, input_size=12)
    return PixelEncoder(encoder.eval(), resolve_preprocessing(encoder.meta))


def test_colour_neighbours_move_with_beyond_colour_jitter_only_where_asked():
    """RGB inputs: the identity view gives similarity 1; BEYOND's view (jitter, grayscale) moves
    a random encoder's embeddings of colour noise."""
    model = _random_encoder(channels=3)
    images = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    identity = ViewSpec(crop="center", hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    still = beyond_scores(model, images, num_neighbours=2, view=identity)
    assert torch.allclose(still.similarity, torch.ones(6), atol=1e-5)
    moved = beyond_scores(model, images, num_neighbours=4, view=BEYOND_VIEW)
    assert moved.similarity.shape == (6,) and bool((moved.similarity < 0.999).all())


def test_identity_neighbours_agree_with_their_input_and_scores_combine_as_stated():
    """Views that only resize (no crop, flip or colour) reach the encoder exactly as the input
    does (PixelEncoder resizes the input with the same antialiased bilinear): similarity 1 and
    consistency 1, score 0. Any double normalisation would break this."""
    model = _random_encoder()
    images = unit_images(load_dataset("digits").test.samples[:12])
    identity = ViewSpec(crop="center", hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0)
    result = beyond_scores(
        model, images, classifier=lambda z: (z[:, 0] > 0).long(), num_neighbours=3, view=identity
    )
    assert torch.allclose(result.similarity, torch.ones(12), atol=1e-5)
    assert torch.equal(result.consistency, torch.ones(12))
    assert torch.allclose(result.score, torch.zeros(12), atol=1e-5)

    augmented = beyond_scores(
        model, images, classifier=lambda z: (z[:, 0] > z[:, 1]).long(), num_neighbours=8, seed=3
    )
    expected = 1 - (0.8 * augmented.consistency + 0.2 * augmented.similarity)
    assert torch.allclose(augmented.score, expected)
    assert set(augmented.consistency.tolist()) <= {k / 8 for k in range(9)}
    again = beyond_scores(
        model, images, classifier=lambda z: (z[:, 0] > z[:, 1]).long(), num_neighbours=8, seed=3
    )
    assert torch.equal(again.score, augmented.score)  # seeded
    other = beyond_scores(model, images, num_neighbours=8, seed=4)
    assert other.consistency is None and not torch.equal(other.similarity, augmented.similarity)
    assert torch.allclose(other.score, 1 - other.similarity)


def test_either_rule_is_the_larger_clean_rank_of_the_two_parts():
    """Ranks by hand: the share of the clean calibration inputs at least as similar (or as
    consistent) as the input; 1 below every clean input, 0 above them all."""
    calibration = BeyondScores(
        torch.zeros(4), torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([1.0, 1.0, 0.5, 0.0]),
        torch.zeros(4, dtype=torch.long), 2, 0.8,
    )  # fmt: skip
    scores = BeyondScores(
        torch.zeros(3), torch.tensor([0.95, 0.75, 0.5]), torch.tensor([1.0, 0.0, 1.0]),
        torch.zeros(3, dtype=torch.long), 2, 0.8,
    )  # fmt: skip
    # similarity ranks: 0.95 -> 0/4, 0.75 -> 2/4, 0.5 -> 4/4; consistency: 1.0 -> 2/4, 0.0 -> 4/4
    expected = torch.tensor([max(0.0, 0.5), max(0.5, 1.0), max(1.0, 0.5)])
    assert torch.allclose(either_rule(scores, calibration), expected)
    alone = replace(scores, consistency=None)
    assert torch.allclose(either_rule(alone, calibration), torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ConfigError, match="calibration"):
        either_rule(scores, replace(calibration, consistency=None))


def test_detection_metrics_match_hand_computation():
    clean, adversarial = [0.1, 0.2, 0.3, 0.4], [0.35, 0.5, 0.6]
    # 11 of the 12 (adversarial, clean) pairs are ordered right: 0.35 < 0.4.
    strict = detection_metrics(clean, adversarial, fpr=0.0)
    assert strict.auroc == pytest.approx(11 / 12)
    assert strict.tpr == pytest.approx(2 / 3) and strict.threshold == pytest.approx(0.5)
    assert strict.fpr_achieved == 0.0 and (strict.num_clean, strict.num_adversarial) == (4, 3)
    loose = detection_metrics(torch.tensor(clean), torch.tensor(adversarial), fpr=0.25)
    assert loose.tpr == 1.0 and loose.fpr_achieved == 0.25
    assert loose.threshold == pytest.approx(0.35)
    ties = detection_metrics([0.5, 0.5], [0.5, 1.0])  # a tie counts half
    assert ties.auroc == pytest.approx(0.75) and ties.tpr == 0.5


def test_embedding_classifiers_fit_separated_classes():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=generator) * 4
    labels = torch.arange(4).repeat_interleave(50)
    points = centres[labels] + torch.randn(200, 16, generator=generator)
    query = centres[labels] + torch.randn(200, 16, generator=generator)
    labelled = labels.clone()
    labelled[::10] = -1  # unlabelled rows are ignored
    for kind in ("knn", "linear"):
        classifier = fit_embedding_classifier(points, labelled, kind=kind)
        assert (classifier(query) == labels).float().mean() > 0.97, kind
    with pytest.raises(DataError, match="at least 2 classes"):
        fit_embedding_classifier(points, torch.zeros(200, dtype=torch.long))
    with pytest.raises(ConfigError, match="knn, linear"):
        fit_embedding_classifier(points, labels, kind="svm")


def test_bad_inputs_raise_errors_that_name_the_fix():
    model = _random_encoder()
    images = unit_images(load_dataset("digits").test.samples[:4])
    with pytest.raises(ConfigError, match="num_neighbours must be a whole number >= 1"):
        beyond_scores(model, images, num_neighbours=0)
    with pytest.raises(ConfigError, match="label_weight"):
        beyond_scores(model, images, label_weight=1.5)
    with pytest.raises(DataError, match="1-channel images"):
        beyond_scores(model, images.expand(-1, 3, -1, -1))
    with pytest.raises(DataError, match="non-empty"):
        beyond_scores(model, images[:0])
    with pytest.raises(ConfigError, match="fpr"):
        detection_metrics([0.1], [0.2], fpr=1.0)
    with pytest.raises(DataError, match="at least one clean"):
        detection_metrics([], [0.2])
    with pytest.raises(DataError, match="NaN"):
        detection_metrics([float("nan")], [0.2])
