from __future__ import annotations

import pytest
import torch

from autoprune.data import DataSpec, load_data
from autoprune.models import ModelSpec, build_model
from autoprune.train import TrainRecipe, evaluate, get_baseline, recalibrate_bn, train
from autoprune.workflow.cli import main


def test_training_learns_the_synthetic_task(synthetic_data):
    torch.manual_seed(0)  # the initialisation must not depend on the tests that ran before
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    before = evaluate(model, synthetic_data, "val")
    train(model, synthetic_data, TrainRecipe(epochs=3, lr=0.05, batch_size=64), progress=False)
    assert evaluate(model, synthetic_data, "val") > max(90.0, before + 30)


def test_after_step_hook_runs_every_step(synthetic_data):
    calls = []
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    stats = train(model, synthetic_data, TrainRecipe(steps=7, batch_size=32), progress=False,
                  after_step=lambda m: calls.append(1))
    assert stats["steps"] == 7 and len(calls) == 7


def test_same_seed_same_weights(synthetic_data):
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(ModelSpec("cnn", 0.5, 1, 10))
        train(model, synthetic_data, TrainRecipe(steps=5, batch_size=32, seed=3), progress=False)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_recalibrate_bn_changes_running_stats(synthetic_data):
    model = build_model(ModelSpec("vgg", 0.125, 1, 10))
    bn = model.features[1]
    assert torch.all(bn.running_mean == 0)
    recalibrate_bn(model, synthetic_data, images=128)
    assert not torch.all(bn.running_mean == 0) and bn.momentum == 0.1 and not model.training


def test_baseline_cache_hit_and_corruption(synthetic_idx_root):
    spec = DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200, augment="none")
    mspec = ModelSpec("cnn", 0.5, 1, 10)
    recipe = TrainRecipe(epochs=1, lr=0.05, batch_size=64)
    first = get_baseline(mspec, spec, recipe, progress=False)
    second = get_baseline(mspec, spec, recipe, progress=False)
    assert not first.cache_hit and second.cache_hit
    assert second.test_acc == first.test_acc
    other = get_baseline(mspec, spec, TrainRecipe(epochs=1, lr=0.05, batch_size=64, seed=1),
                         progress=False)
    assert other.path != first.path
    with open(first.path, "wb") as f:
        f.write(b"not a checkpoint")
    third = get_baseline(mspec, spec, recipe, progress=False)
    assert not third.cache_hit and abs(third.test_acc - first.test_acc) < 1e-9


def test_train_cli_runs_and_caches(synthetic_idx_root, capsys):
    args = ["train", "--model", "cnn", "--width", "0.5", "--data-root", str(synthetic_idx_root),
            "--val-size", "200", "--pad-to", "0", "--epochs", "1", "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "trained in" in first and "test accuracy" in first and "MACs" in first
    assert "latency" in first and "MiB" in first
    assert main(args) == 0
    assert "cache hit" in capsys.readouterr().out


class _Permuted(torch.nn.Module):
    """A teacher that answers class ``(c + 1) % 10`` where the task says ``c``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.roll(self.model(x), shifts=1, dims=1)


def test_distillation_follows_the_teacher_and_leaves_it_unchanged(synthetic_data):
    torch.manual_seed(0)
    trained = build_model(ModelSpec("cnn", 0.5, 1, 10))
    train(trained, synthetic_data, TrainRecipe(epochs=3, lr=0.05, batch_size=64),
          progress=False)
    teacher = _Permuted(trained).train()  # train mode on purpose: it must be put in eval
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x, y = next(iter(synthetic_data.loader("val", 200, shuffle=False, augment=False)))
    with torch.no_grad():
        teacher.eval()
        assert (teacher(x).argmax(1) == (y + 1) % 10).float().mean() > 0.9
        teacher.train()

    def student(distill):
        torch.manual_seed(1)
        m = build_model(ModelSpec("cnn", 0.5, 1, 10))
        train(m, synthetic_data, TrainRecipe(epochs=3, lr=0.003, batch_size=64,
                                             optimizer="adamw"),
              progress=False, teacher=teacher, distill=distill, temperature=2.0)
        with torch.no_grad():
            return m(x).argmax(1)

    labels_only, distilled = student(0.0), student(1.0)
    # weight 1: the labels are ignored, the student learns the teacher's permuted answers
    assert (distilled == (y + 1) % 10).float().mean() > 0.8
    assert (distilled == y).float().mean() < 0.2
    assert (labels_only == y).float().mean() > 0.8
    assert teacher.training  # its mode restored, its weights (and batch-norm stats) untouched
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


class _Stop(Exception):
    pass


def _crash_at(n: int):
    """An ``after_step`` hook that interrupts training at its ``n``-th call."""
    calls = []

    def hook(_model):
        calls.append(1)
        if len(calls) == n:
            raise _Stop

    return hook


def test_interrupted_training_resumes_to_the_same_weights(synthetic_idx_root, tmp_path):
    # Augmented, shuffled batches, a batch-norm model, momentum and a one-cycle schedule: a
    # resumed run must restore every piece of state, not just the weights.
    data = load_data(DataSpec("fashion-mnist", root=str(synthetic_idx_root), val_size=200,
                              augment="flip+crop"))
    recipe = TrainRecipe(steps=40, batch_size=64, seed=2)  # 16 batches an epoch: 2.5 epochs

    def fresh(seed):
        torch.manual_seed(seed)
        return build_model(ModelSpec("vgg", 0.125, 1, 10))

    straight = fresh(0)
    torch.manual_seed(5)
    train(straight, data, recipe, progress=False)

    progress = tmp_path / "run.progress.pt"
    interrupted = fresh(0)
    torch.manual_seed(5)
    with pytest.raises(_Stop):
        # step 23 lies inside the second epoch, after 22 saved steps
        train(interrupted, data, recipe, progress=False, after_step=_crash_at(23),
              resume=progress, save_every=0.0)
    assert progress.is_file()
    resumed = fresh(1)  # different weights: they must come from the saved progress
    torch.manual_seed(99)  # and the random state too
    stats = train(resumed, data, recipe, progress=False, resume=progress)
    assert stats["resumed_from"] == 22 and stats["steps"] == 40
    assert not progress.exists()
    a, b = straight.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_progress_that_does_not_fit_is_ignored(synthetic_data, tmp_path):
    progress = tmp_path / "run.progress.pt"
    recipe = TrainRecipe(steps=6, batch_size=32)
    small = build_model(ModelSpec("cnn", 0.5, 1, 10))
    with pytest.raises(_Stop):
        train(small, synthetic_data, recipe, progress=False, resume=progress, save_every=0.0,
              after_step=_crash_at(3))
    assert progress.is_file()
    torch.manual_seed(0)
    other = build_model(ModelSpec("cnn", 1.0, 1, 10))  # another width: the saved state misfits
    init = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.warns(UserWarning, match="does not fit this run"):
        stats = train(other, synthetic_data, recipe, progress=False, resume=progress)
    assert stats["resumed_from"] == 0
    torch.manual_seed(0)
    reference = build_model(ModelSpec("cnn", 1.0, 1, 10))
    assert all(torch.equal(init[k], v) for k, v in reference.state_dict().items())
    train(reference, synthetic_data, recipe, progress=False)
    assert all(torch.equal(other.state_dict()[k], v) for k, v in reference.state_dict().items())


def test_cpu_evaluation_runs_channels_last_and_puts_the_model_back(synthetic_data):
    """evaluate() runs a conv net in the channels-last format on CPU (faster there) and
    leaves its parameters contiguous, so training, saving and torch-pruning see the model as
    before; the accuracy is the contiguous run's, prediction for prediction."""
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", 0.5, 1, 10))
    train(model, synthetic_data, TrainRecipe(steps=20, lr=0.05, batch_size=64), progress=False)
    formats = []
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert conv.in_channels > 1  # one channel is contiguous in either format
    hook = conv.register_forward_pre_hook(lambda m, args: formats.append(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        and args[0].is_contiguous(memory_format=torch.channels_last)))
    acc = evaluate(model, synthetic_data, "val", device="cpu")
    hook.remove()
    assert formats and all(formats)
    assert all(p.is_contiguous() for p in model.parameters())
    # the same predictions in the contiguous format
    assert acc == evaluate(model, synthetic_data, "val", device="cpu", channels_last=False)
    assert not model.training


def test_recalibration_runs_channels_last_and_training_restores_the_format_on_errors(
        synthetic_data):
    """recalibrate_bn() runs a conv net channels-last on CPU too, with the same running
    statistics as a contiguous pass up to float rounding, and leaves it contiguous; a
    channels-last training run that fails midway still puts the parameters back."""
    torch.manual_seed(0)
    model = build_model(ModelSpec("vgg", 0.125, 1, 10))
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    formats = []
    hook = conv.register_forward_pre_hook(lambda m, args: formats.append(
        args[0].is_contiguous(memory_format=torch.channels_last)))
    recalibrate_bn(model, synthetic_data, images=256, device="cpu")
    hook.remove()
    assert formats and all(formats)
    assert all(p.is_contiguous() for p in model.parameters())
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    channels_last_stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    recalibrate_bn(model, synthetic_data, images=256, device="cpu", channels_last=False)
    for (mean, var), bn in zip(channels_last_stats, bns):
        torch.testing.assert_close(mean, bn.running_mean, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(var, bn.running_var, rtol=1e-4, atol=1e-4)

    def fail(_model):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train(model, synthetic_data, TrainRecipe(steps=5, channels_last=True), progress=False,
              after_step=fail)
    assert all(p.is_contiguous() for p in model.parameters())
