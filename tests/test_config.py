"""Settings: defaults, validation, file round trips and precedence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ptychopinn.config import HeadKind, LossKind, Settings, TrainingConfig, resolve_settings


def test_defaults_follow_the_spec():
    s = Settings()
    assert (s.data.gridsize, s.data.neighbor_count, s.physics.probe_scale) == (2, 4, 4.0)
    assert (s.training.batch_size, s.training.learning_rate, s.training.epochs) == (None, 1e-3, 50)
    assert (s.training.lr_factor, s.training.lr_patience, s.training.min_lr) == (0.5, 2, 1e-4)
    assert s.training.validation_fraction == 0.05
    assert s.training.loss == {LossKind.poisson: 1.0}
    assert s.model.head is HeadKind.full and s.inference.stitch_crop == 20
    assert s.object_big is True


@pytest.mark.parametrize("n_train_groups,expected", [
    (5000, 16), (1024, 16), (1023, 8), (913, 8), (512, 8), (511, 4), (343, 4), (20, 4),
])
def test_auto_batch_size_keeps_64_steps_per_epoch_down_to_batches_of_4(n_train_groups, expected):
    assert Settings().training.resolved_batch_size(n_train_groups) == expected


def test_an_explicit_batch_size_is_kept_whatever_the_scan():
    training = resolve_settings(overrides={"training": {"batch_size": 32}}).training
    assert training.resolved_batch_size(50) == 32 and training.resolved_batch_size(10_000) == 32


def test_inference_batch_is_small_on_a_cpu_and_large_on_a_gpu_unless_set():
    from ptychopinn.config import AUTO_INFERENCE_BATCH, InferenceConfig

    assert InferenceConfig().resolved_batch_size(on_gpu=False) == AUTO_INFERENCE_BATCH["cpu"] == 16
    assert InferenceConfig().resolved_batch_size(on_gpu=True) == AUTO_INFERENCE_BATCH["gpu"] == 512
    assert InferenceConfig(batch_size=64).resolved_batch_size(on_gpu=False) == 64


def test_the_final_decay_steps_geometrically_to_min_lr_over_the_last_quarter():
    training = TrainingConfig(epochs=24)  # defaults: the last 6 epochs, down to 1e-4
    assert training.final_decay_start() == 18
    assert [training.decayed_learning_rate(e, 1e-3) for e in (0, 17)] == [None, None]
    rates = [training.decayed_learning_rate(e, 1e-3) for e in range(18, 24)]
    assert rates == pytest.approx([1e-3 * 0.1 ** (k / 6) for k in range(1, 7)])
    assert training.decayed_learning_rate(23, 5e-5) == pytest.approx(5e-5)  # the plateau rule went lower
    assert TrainingConfig(epochs=3).final_decay_start() == 3  # a quarter of 3 epochs is none
    assert TrainingConfig(epochs=8, final_decay_fraction=0).decayed_learning_rate(7, 1e-3) is None


def test_a_decay_without_a_floor_is_refused():
    with pytest.raises(ValueError, match="min_lr above 0"):
        TrainingConfig(min_lr=0)
    assert TrainingConfig(min_lr=0, final_decay_fraction=0).min_lr == 0


def test_object_big_follows_gridsize_unless_explicit():
    assert resolve_settings(overrides={"data": {"gridsize": 1}}).object_big is False
    explicit = resolve_settings(overrides={"data": {"gridsize": 2}, "model": {"object_big": False}})
    assert explicit.object_big is False


@pytest.mark.parametrize("epochs,fraction,gridsize,per_pattern,expected", [
    (50, 0.5, 2, True, 25), (8, 0.5, 2, True, 4), (3, 0.5, 2, True, 2), (8, 1.5, 3, True, 12),
    (8, 0.0, 2, True, 0), (8, 0.5, 1, True, 0),
    (8, 0.5, 2, False, 0),  # joint encoding: the gridsize-1 network is a different network
])
def test_curriculum_epochs(epochs, fraction, gridsize, per_pattern, expected):
    training = resolve_settings(overrides={"training": {"epochs": epochs, "curriculum_fraction": fraction}}).training
    assert training.curriculum_epochs(gridsize, per_pattern) == expected


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(tmp_path, suffix):
    s = resolve_settings(overrides={"training": {"loss": "poisson=1,mae=0.25", "epochs": 3}})
    path = s.save(tmp_path / f"settings{suffix}")
    assert Settings.load(path) == s


def test_unknown_fields_and_bad_choices_are_rejected(tmp_path):
    with pytest.raises(ValidationError, match="extra"):
        Settings.model_validate({"training": {"epoch": 3}})
    with pytest.raises(ValidationError):
        Settings.model_validate({"model": {"head": "sideways"}})
    with pytest.raises(ValidationError, match="positive weight"):
        resolve_settings(overrides={"training": {"loss": "mae=0"}})
    with pytest.raises(ValidationError, match="neighbor_count"):
        resolve_settings(overrides={"data": {"gridsize": 3, "neighbor_count": 4}})


def test_flag_beats_file_beats_default(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 7\n  batch_size: 8\ndata:\n  gridsize: 1\n")
    s = resolve_settings(path, {"training": {"epochs": 2, "batch_size": None}})
    assert s.training.epochs == 2  # flag
    assert s.training.batch_size == 8  # file (the unset flag does not count)
    assert s.data.gridsize == 1 and s.training.learning_rate == 1e-3  # file, default


def test_non_mapping_file_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        resolve_settings(path)


def test_overrides_deep_merge_and_keep_every_other_setting():
    base = resolve_settings(overrides={"training": {"learning_rate": 5e-4, "loss": "mae"}, "data": {"gridsize": 1}})
    merged = base.with_overrides({"training": {"epochs": 8}, "refinement": {"passes": 3}})
    assert merged.training.epochs == 8 and merged.refinement.passes == 3
    assert merged.training.learning_rate == 5e-4 and merged.data.gridsize == 1
    assert merged.training.loss == {LossKind.mae: 1.0}
    # a leaf that is itself a mapping (the loss) is replaced, not merged
    assert base.with_overrides({"training": {"loss": {"mse": 1.0}}}).training.loss == {LossKind.mse: 1.0}
    assert base.training.epochs == 50  # with_overrides returns new settings
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        base.with_overrides({"training": {"epochs": 0}})


def test_the_api_merges_overrides_into_given_settings_deeply(tiny_scan, tmp_path):
    """Regression: overrides={"training": {"epochs": 1}} used to reset every other training
    setting (a learning rate of 5e-4 came back as 1e-3)."""
    from ptychopinn.api import train

    settings = resolve_settings(overrides={"data": {"gridsize": 1, "n_groups": 16},
                                           "model": {"n_filters_scale": 1}, "training": {"batch_size": 8}})
    settings.training.learning_rate = 5e-4
    model = train(tiny_scan, tmp_path, settings=settings, overrides={"training": {"epochs": 1}})
    assert model.settings.training.epochs == 1
    assert model.settings.training.learning_rate == 5e-4 and model.settings.training.batch_size == 8
    assert model.settings.data.n_groups == 16 and model.settings.model.n_filters_scale == 1
    assert Settings.load(tmp_path / "config.yaml").training.learning_rate == 5e-4


def test_refinement_is_a_settings_section_with_the_refine_defaults(tmp_path):
    from ptychopinn.reconstruction.refine import RefineOptimizer, RefineOptions

    assert Settings().refinement == RefineOptions() and Settings().refinement.passes == 20
    path = tmp_path / "c.yaml"
    path.write_text("refinement:\n  passes: 7\n  optimizer: adam\n  learning_rate: 0.01\n")
    loaded = resolve_settings(path).refinement
    assert (loaded.passes, loaded.optimizer, loaded.learning_rate) == (7, RefineOptimizer.adam, 0.01)
    with pytest.raises(ValidationError, match="extra"):
        Settings.model_validate({"refinement": {"accelerator": "cpu"}})  # a runtime choice, not a setting
    with pytest.raises(ValidationError, match="choose --refine-optimizer adam or mpie"):
        Settings.model_validate({"refinement": {"learning_rate": 0.1}})


def test_the_removed_architecture_setting_still_loads_old_files(tmp_path, caplog):
    """``model.architecture`` could only be "cnn": files and bundles that hold it load, the key is
    dropped; any other value names the key."""
    path = tmp_path / "old.yaml"
    path.write_text("model:\n  architecture: cnn\n  n_filters_scale: 1\n")
    with caplog.at_level("INFO", logger="ptychopinn"):
        assert resolve_settings(path).model.n_filters_scale == 1
    assert "architecture" in caplog.text
    assert "architecture" not in Settings().to_plain()["model"]
    with pytest.raises(ValidationError, match="model.architecture: only 'cnn' existed"):
        Settings.model_validate({"model": {"architecture": "unet"}})
