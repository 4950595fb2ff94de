"""The Python API: simulate → train → reconstruct → evaluate, without the CLI.

>>> from ptychopinn import simulate, train, reconstruct, evaluate   # doctest: +SKIP
>>> scan = simulate("lines", size=128, n=64)
>>> model = train(scan, output_dir="run", overrides={"training": {"epochs": 5}})
>>> result = reconstruct(model, scan)
>>> evaluate(result, scan)["phase_ssim"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.atomic import write_json_atomic
from ptychopinn.backends import ModelBackend, TrainingResult, TrainingRun, get_backend
from ptychopinn.config import Backend, GroupEncoding, Settings, StitchWeighting, resolve_settings
from ptychopinn.data import Scan, load_scan
from ptychopinn.data.grouped import GroupedScan, split_groups
from ptychopinn.model.architecture import Architecture, ModelGeometry, canvas_size_for
from ptychopinn.model.general import probe_outside
from ptychopinn.model.trained import MODEL_FILE, SETTINGS_FILE, TrainedModel, load_model
from ptychopinn.physics.probe import TWIN_SYMMETRIC_BELOW, probe_similarity, twin_asymmetry
from ptychopinn.physics.scaling import ScaleContract
from ptychopinn.plots import plot_pretraining_curves, plot_training_curves
from ptychopinn.progress import progress
from ptychopinn.reconstruction.result import Reconstruction
from ptychopinn.reconstruction.stitch import Stitcher

log = logging.getLogger(__name__)

CURRICULUM_DIR = "curriculum"  # the gridsize-1 stage's logs, inside the training output directory


def as_scan(scan: Scan | str | Path, intensity: bool = False, *, lazy: bool = False) -> Scan:
    """``scan``, or the scan file it names loaded (``intensity``: the file holds counts; ``lazy``:
    its patterns stay on disk and are read as they are asked for)."""
    return scan if isinstance(scan, Scan) else load_scan(scan, intensity=intensity, lazy=lazy)


def _as_settings(settings: Settings | None, overrides: dict[str, Any] | None) -> Settings:
    if settings is not None and overrides:
        return settings.with_overrides(overrides)
    return settings if settings is not None else resolve_settings(None, overrides)


def _with_backend(settings: Settings, backend: Backend | str | None) -> Settings:
    """``settings`` with ``backend`` (when given) replacing ``settings.backend``."""
    if backend is None or Backend(backend) is settings.backend:
        return settings
    settings = settings.model_copy(deep=True)
    settings.backend = Backend(backend)
    return settings


def build_scales(scan: Scan, settings: Settings) -> ScaleContract:
    return ScaleContract.from_training_data(
        scan.diffraction,
        probe_scale=settings.physics.probe_scale,
        probe_mask=settings.physics.probe_mask,
        nphotons=settings.physics.nphotons,
        valid=scan.valid_pixels,  # a hot pixel would set the scales
    )


def training_inputs(scan: Scan, settings: Settings) -> tuple[GroupedScan, ScaleContract, np.ndarray]:
    """What training on ``scan`` sees: its groups, its scale contract and its normalised probe,
    (N, N), or (K, N, N) incoherent modes (:func:`training_probe`). Bad detector pixels read 0
    in the network's input (:class:`GroupedScan`) and stay out of the scales, and the losses leave
    them out (docs/design/spec.md#loss)."""
    return (GroupedScan.build(scan, settings.data), build_scales(scan, settings), training_probe(scan, settings))


def training_probe(scan: Scan, settings: Settings) -> np.ndarray:
    """The normalised probe training uses: (N, N) for one mode, else (K, N, N) modes, K the scan's
    count or ``physics.probe_modes``. A probe with more modes than asked for is refused, never
    cut to fewer; modes beyond the scan's start from its probe (orthogonal, powers 1 : 0.3 : 0.09)."""
    wanted = settings.physics.probe_modes or scan.n_probe_modes
    if wanted < scan.n_probe_modes:
        raise ValueError(f"{scan.source or 'the scan'}: its probe has {scan.n_probe_modes} incoherent modes; "
                         f"--probe-modes {wanted} would drop some (use --probe-modes {scan.n_probe_modes} or more)")
    modes = scan.probes
    if wanted > len(modes):
        from ptychopinn.simulation.simulate import make_probe_modes  # NumPy only; the modes' start

        modes = np.concatenate([modes, make_probe_modes(modes[0], wanted)[len(modes):]])
    normalized = normalized_probe_modes(settings, modes)
    return normalized[0] if len(normalized) == 1 else normalized


def normalized_probe_modes(settings: Settings, modes: np.ndarray) -> np.ndarray:
    """(K, N, N) modes normalised together (docs/design/spec.md#scaling): one factor for all,
    chosen so that their total power Σ_k ‖P_k‖² is that of mode 0 normalised alone. The object
    the network must produce then has the scale of a single-mode model's; the modes keep their
    power ratios."""
    modes = np.asarray(modes).reshape(-1, *np.shape(modes)[-2:])
    first = settings.physics.normalized_probe(modes[0])
    if len(modes) == 1:
        return first[np.newaxis]
    total = np.sum(np.abs(modes.astype(np.complex128)) ** 2)
    factor = np.sqrt(np.sum(np.abs(first.astype(np.complex128)) ** 2) / total)
    return (modes * factor).astype(np.complex64)


def probe_digest(probe: np.ndarray) -> str:
    """sha256 of a normalised probe (or modes) as complex64: names the guess a probe was learned from."""
    return hashlib.sha256(np.ascontiguousarray(probe, dtype=np.complex64).tobytes()).hexdigest()


@dataclass
class TrainingSummary:
    model: TrainedModel
    model_path: Path
    output_dir: Path
    epochs_run: int  # all stages
    device: str
    curriculum_epochs_run: int = 0  # of which at gridsize 1 (curriculum)
    collapse_warnings: list[str] = dataclasses.field(default_factory=list)  # epochs whose patches collapsed


def train(
    scan: Scan | str | Path,
    output_dir: str | Path,
    settings: Settings | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    quiet: bool = True,
    backend: Backend | str | None = None,
) -> TrainedModel:
    """Train on ``scan`` (no ground truth used); writes model.pinn, config.yaml, metrics.csv and
    training_curves.png into ``output_dir`` and returns the trained model.

    ``backend`` ("torch" or "tensorflow") overrides ``settings.backend`` (default torch)."""
    return train_with_summary(scan, output_dir, settings, overrides=overrides, resume=resume, quiet=quiet,
                              backend=backend).model


def train_with_summary(
    scan: Scan | str | Path,
    output_dir: str | Path,
    settings: Settings | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    resume: str | Path | None = None,
    quiet: bool = True,
    batch_observers: list | None = None,
    backend: Backend | str | None = None,
) -> TrainingSummary:
    settings = _with_backend(_as_settings(settings, overrides), backend)
    get_backend(settings.backend).check(settings, resume=Path(resume) if resume else None)
    scan = as_scan(scan, settings.data.intensity)
    settings = with_resolved_batch_size(settings, scan)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings.save(output_dir / SETTINGS_FILE)
    warn_if_twin_symmetric(scan.probe)
    curriculum = _curriculum_epochs(settings)
    initial_weights, first_epochs = None, 0
    initial_probe = None
    if curriculum and not resume:  # a resumed run continues its last stage
        initial_weights, first_epochs, initial_probe = _curriculum_stage(scan, settings, curriculum,
                                                                         output_dir / CURRICULUM_DIR, quiet)
    draft, result = _train_stage(scan, settings, output_dir, resume=resume, quiet=quiet,
                                 batch_observers=batch_observers, initial_weights=initial_weights,
                                 initial_probe=initial_probe)
    model_path = draft.save(output_dir / MODEL_FILE)
    draft.source = model_path
    if result.metrics_csv is not None:
        plot_training_curves(result.metrics_csv, output_dir / "training_curves.png")
    return TrainingSummary(draft, model_path, output_dir, first_epochs + result.epochs_run, result.device,
                           first_epochs, list(result.collapse_warnings))


def with_resolved_batch_size(settings: Settings, scan: Scan) -> Settings:
    """``settings`` with the auto batch size fixed for this scan, so that config.yaml and the
    bundle record the number trained with (the curriculum stage has as many groups)."""
    if settings.training.batch_size is not None:
        return settings
    n_groups = settings.data.n_groups or scan.n_patterns
    train_idx, _ = split_groups(n_groups, settings.training.validation_fraction, settings.training.seed)
    settings = settings.model_copy(deep=True)
    settings.training.batch_size = settings.training.resolved_batch_size(len(train_idx))
    return settings


def warn_if_twin_symmetric(probe: np.ndarray) -> bool:
    """Warn (and return True) when the probe is its own twin: the network then cannot resolve the
    twin per pattern and its object may mix patches with their twins (docs/lab-notes/2026-11-25-network-quality.md)."""
    asymmetry = twin_asymmetry(probe)
    if asymmetry >= TWIN_SYMMETRIC_BELOW:
        return False
    log.warning("the probe is real and centro-symmetric (twin asymmetry %.2g): an object patch and its "
                "twin (conjugated, point-reflected) give the same diffraction, so the network cannot tell "
                "them apart and its reconstruction may mix the two. Refine its output (infer "
                "--refine-passes K; --flat-check K refines a flat start alongside for K passes and keeps "
                "whichever fits the data better) or reconstruct iteratively (refine --init flat).", asymmetry)
    return True


def _curriculum_epochs(settings: Settings) -> int:
    per_pattern = settings.model.group_encoding is GroupEncoding.per_pattern
    return settings.training.curriculum_epochs(settings.data.gridsize, per_pattern)


def _curriculum_stage(
    scan: Scan, settings: Settings, epochs: int, output_dir: Path, quiet: bool
) -> tuple[dict, int, np.ndarray | None]:
    """Curriculum over gridsize: with per-pattern encoding the network of a gridsize-C model is
    the gridsize-1 network, so extra epochs first train it on single patterns (C× cheaper, and a
    better start than the merge finds on its own: docs/lab-notes/2026-11-25-network-quality.md) before the
    group's physics takes over. Returns the weights, the epochs run and the learned probe (or None)."""
    stage = settings.model_copy(deep=True)
    stage.data.gridsize, stage.model.object_big, stage.training.epochs = 1, None, epochs
    log.info("curriculum: %d epochs at gridsize 1, then %d at gridsize %d", epochs,
             settings.training.epochs, settings.data.gridsize)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, result = _train_stage(scan, stage, output_dir, quiet=quiet)
    return model.weights, result.epochs_run, result.learned_probe


def _train_stage(
    scan: Scan,
    settings: Settings,
    output_dir: Path,
    *,
    resume: str | Path | None = None,
    quiet: bool = True,
    batch_observers: list | None = None,
    initial_weights: dict | None = None,
    initial_probe: np.ndarray | None = None,
) -> tuple[TrainedModel, TrainingResult]:
    """One training run of ``settings`` with ``settings.backend`` → (the trained model, not yet
    saved; the backend's result). ``initial_probe``: where a learned probe starts, in place of
    the scan's (the curriculum stage's learned probe)."""
    backend = get_backend(settings.backend)
    grouped, scales, guess = training_inputs(scan, settings)
    geometry = ModelGeometry(scan.patch_size, canvas_size_for(scan.patch_size, grouped.max_offset))
    log.info("scale contract: a=%.6g, n̄=%.6g counts, S=%.6g", scales.input_scale,
             scales.mean_counts, scales.photon_scale)
    arch = Architecture.from_settings(settings, geometry)
    start = guess if initial_probe is None else np.asarray(initial_probe).reshape(np.shape(guess))
    result = backend.train(TrainingRun(grouped, settings, scales, start, arch, output_dir, quiet=quiet,
                                       batch_observers=batch_observers, initial_weights=initial_weights,
                                       resume=Path(resume) if resume else None))
    for warning in result.collapse_warnings:
        log.debug("collapse check: %s", warning)  # each was logged as a warning when its epoch ended
    return trained_model(settings, geometry, scales, guess, result, backend.name), result


def trained_model(settings: Settings, geometry: ModelGeometry, scales: ScaleContract, guess: np.ndarray,
                  result: TrainingResult, backend: str) -> TrainedModel:
    """The model a training run produced, holding the probe it trained with: the learned modes
    (and the digest of the guess they were learned from, which decides when inference uses them),
    else the normalised guess."""
    probe = guess if result.learned_probe is None else result.learned_probe
    modes = np.asarray(probe).reshape(-1, *np.shape(probe)[-2:])
    return TrainedModel(settings, geometry, scales, modes[0], result.weights, backend=backend,
                        probe_modes=modes if len(modes) > 1 else None,
                        probe_guess_digest=None if result.learned_probe is None else probe_digest(guess))


GENERAL_FINETUNE_RATE_FACTOR = 0.1


def finetune(
    model: TrainedModel,
    scan: Scan | str | Path,
    epochs: int,
    output_dir: str | Path,
    *,
    quiet: bool = True,
    backend: Backend | str | ModelBackend | None = None,
) -> TrainedModel:
    """Self-supervised fine-tuning: continue training ``model`` on the scan being reconstructed
    (its own diffraction, its own probe and scales; no ground truth). Returns a new model; the
    bundle on disk is untouched unless the caller saves the result.

    ``backend``: the one that trains, by default the model's own (``settings.backend``); the
    returned model records it, in its settings and as the bundle's backend."""
    backend = get_backend(backend or model.settings.backend)
    scan = as_scan(scan, model.settings.data.intensity)
    _check_compatible(model, scan)
    warn_if_twin_symmetric(scan.probe)  # training on the scan faces the same ambiguity
    settings = model.settings.model_copy(deep=True)
    settings.backend, settings.training.epochs = Backend(backend.name), epochs
    if settings.corpus is not None:
        # a general model is adapted, not retrained: a tenth of its peak pretraining rate, and the
        # automatic batch size (pretraining's 32 groups would leave a small scan a few steps)
        settings.training.learning_rate = GENERAL_FINETUNE_RATE_FACTOR * settings.training.learning_rate
        settings.training.batch_size = None
    backend.check(settings)
    grouped, scales, guess = training_inputs(scan, settings)
    # a probe learned on this very guess goes on learning from where it stopped
    start = model.probes if uses_learned_probe(model, scan) and settings.training.learn_probe else guess
    result = backend.train(TrainingRun(grouped, settings, scales, np.asarray(start).reshape(np.shape(guess)),
                                       model.architecture(), Path(output_dir), quiet=quiet,
                                       initial_weights=model.weights))
    tuned = trained_model(settings, model.geometry, scales, guess, result, backend.name)
    return dataclasses.replace(model, settings=settings, scales=scales, probe=tuned.probe, weights=result.weights,
                               backend=backend.name, source=None, probe_modes=tuned.probe_modes,
                               probe_guess_digest=tuned.probe_guess_digest)


def uses_learned_probe(model: TrainedModel, scan: Scan) -> bool:
    """True when ``model`` learned its probe from the very probe guess ``scan`` carries: the
    learned probe is then the better estimate of this scan's illumination (a per-scan model,
    fine-tuned or reconstructing its own scan). Any other scan brings its own probe."""
    if model.probe_guess_digest is None:
        return False
    try:
        guess = training_probe(scan, model.settings)
    except ValueError:  # more modes than the model has: not the guess it learned from
        return False
    return probe_digest(guess) == model.probe_guess_digest


def reconstruct(
    model: TrainedModel | str | Path,
    scan: Scan | str | Path,
    *,
    batch_size: int | None = None,
    n_groups: int | None = None,
    accelerator: str | None = None,
    stitch_crop: int | None = None,
    stitch_weighting: StitchWeighting | str | None = None,
    show_progress: bool = False,
    batch_observers: list | None = None,
    backend: Backend | str | ModelBackend | None = None,
) -> Reconstruction:
    """Stream ``scan`` through ``model`` and stitch the object in object pixel coordinates.

    The scan is grouped with the model's settings and normalised with its own input scale a
    (the scale contract's function); memory is bounded by one batch plus the canvas. A scan
    given as a path is read lazily (``load_scan(..., lazy=True)``): one batch of patterns at a
    time, after one chunked pass for the scale; nothing of the scan's size is held but its
    positions and group indices.
    ``batch_observers`` are called as ``observe("infer", batch_idx, (x, offsets), output)`` after
    every batch (diagnostics hook; the same signature as training's observers; torch tensors
    with the torch backend, NumPy arrays with the TensorFlow backend).
    ``backend``: "torch" or "tensorflow" (or a backend from
    :func:`~ptychopinn.backends.get_backend`); default: the model's ``settings.backend`` (the
    backend it was trained with). Either backend runs a model trained by either.
    """
    model = load_model(model) if not isinstance(model, TrainedModel) else model
    backend = get_backend(backend or model.settings.backend)
    inference = model.settings.inference
    scan = as_scan(scan, model.settings.data.intensity, lazy=True)
    _check_compatible(model, scan)
    model = with_scan_probe(model, scan)
    grouped = GroupedScan.build(scan, model.settings.data, n_groups)
    _log_scales(model.scales, grouped)
    accelerator = accelerator or inference.accelerator
    run_batch = backend.predictor(model, accelerator)
    stitcher = Stitcher(
        grouped.centers(slice(None)), model.patch_size,
        crop=stitch_crop or inference.stitch_crop,
        weighting=StitchWeighting(stitch_weighting or inference.stitch_weighting).value,
        # at C > 1 too a group's global phase is free, but aligning the groups there helped trained
        # networks a little and set an undertrained one (the demo's) far back (docs/lab-notes/2026-11-25-network-quality.md)
        probe=model.probe, align_phase=model.settings.data.channels == 1,
    )
    batch_size = batch_size or inference.resolved_batch_size(backend.runs_on_gpu(accelerator))
    batches = list(grouped.batches(batch_size))
    log.info("inference: %d groups in %d batches of up to %d (%s backend)", len(grouped), len(batches), batch_size,
             backend.name)
    for index, selection in enumerate(progress(batches, "reconstructing", enabled=show_progress)):
        inputs, output, group_object = run_batch(grouped.diffraction(selection), grouped.offsets(selection),
                                                 grouped.members(selection))
        stitcher.add(group_object, grouped.centers(selection))
        for observe in batch_observers or ():
            observe("infer", index, inputs, output)
    return stitcher.result()


# Probes this similar to the one a model was trained with (probe_similarity: 1 for the same probe)
# are within what it has seen; the simulated disk and defocused probes score 0.17 against each other
PROBE_SIMILARITY_WARN_BELOW = 0.9


def with_scan_probe(model: TrainedModel, scan: Scan) -> TrainedModel:
    """``model`` with the probe of the scan it reconstructs (normalised by the scale contract's
    function) in place of the one stored at training: the physics layer, the back-projected input
    and the stitching weights then use the illumination that produced these patterns. Logs how
    the scan's probe compares with what the model was trained on, and warns when it lies outside:
    for a general model, the training probes' statistics; otherwise the one training probe.

    A model that learned its probe from this scan's probe guess keeps its learned probe (and
    modes): :func:`uses_learned_probe`. A scan with incoherent modes brings them all."""
    if uses_learned_probe(model, scan):
        log.info("probe: the one the model learned from this scan's probe guess (%d mode(s))", len(model.probes))
        return model
    modes = normalized_probe_modes(model.settings, scan.probes)
    probe = modes[0]
    model = dataclasses.replace(model, probe_modes=modes if len(modes) > 1 else None, probe_guess_digest=None)
    if model.training_probes is not None:
        outside = probe_outside(model.training_probes, probe)
        if outside:
            log.warning("this scan's probe lies outside the probes the model was pretrained on (%s): its "
                        "one-pass result may be poor; fine-tune on the scan (infer --finetune-epochs E) or "
                        "refine it (infer --refine-passes K)", outside)
        else:
            log.info("probe: the scan's own, within the range of the probes the model was pretrained on")
        return dataclasses.replace(model, probe=probe)
    similarity = probe_similarity(model.probe, probe)
    if similarity < PROBE_SIMILARITY_WARN_BELOW:
        log.warning("this scan's probe differs from the one the model was trained with (similarity %.2f, "
                    "1 = the same): its one-pass result may be poor; fine-tune on the scan "
                    "(infer --finetune-epochs E) or refine it (infer --refine-passes K)", similarity)
    else:
        log.info("probe: the scan's own, similarity %.3f to the model's training probe", similarity)
    return dataclasses.replace(model, probe=probe)


def _check_compatible(model: TrainedModel, scan: Scan) -> None:
    if scan.patch_size != model.patch_size:
        raise ValueError(
            f"{scan.source}: patterns are {scan.patch_size}×{scan.patch_size} but the model was "
            f"trained on {model.patch_size}×{model.patch_size}"
        )


def _log_scales(scales: ScaleContract, grouped: GroupedScan) -> None:
    log.info(
        "scale contract (from the bundle): S=%.6g, training a=%.6g, training n̄=%.6g; "
        "this scan: a=%.6g (%d groups)",
        scales.photon_scale, scales.input_scale, scales.mean_counts, grouped.input_scale, len(grouped),
    )


def evaluate(
    reconstruction: Reconstruction | str | Path,
    truth: Scan | str | Path,
    *,
    crop: int = 20,
) -> dict[str, Any]:
    """docs/design/spec.md#evaluation metrics of a reconstruction against the scan's reference object."""
    # SciPy and scikit-image load only for this
    from ptychopinn.evaluation.truth import evaluate_against_truth

    if not isinstance(reconstruction, Reconstruction):
        reconstruction = Reconstruction.load(reconstruction)
    return evaluate_against_truth(reconstruction, as_scan(truth), crop)


@dataclass
class PretrainingSummary:
    model: TrainedModel
    model_path: Path | None  # None on the ranks > 0 of a distributed run, which write nothing
    output_dir: Path
    epochs_run: int
    steps_run: int
    device: str
    world_size: int
    wall_seconds: float
    rank_weight_digests: list[float]  # one per rank: equal when the ranks hold equal weights


def pretrain(
    output_dir: str | Path,
    settings: Settings | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    patch_size: int = 64,
    resume: str | Path | None = None,
    quiet: bool = True,
) -> PretrainingSummary:
    """Pretrain a general model on the procedural corpus (docs/design/corpus.md): no scan and no
    ground truth in the loss. Writes model.pinn, config.yaml, metrics.csv, training_curves.png
    and checkpoints/ (``resume`` continues from checkpoints/last.ckpt or another checkpoint).

    ``settings`` default to :func:`ptychopinn.model.general.pretraining_settings`; the corpus
    section says what is drawn. Distributed runs (training.devices, num_nodes, strategy) run this
    on every rank; only rank 0 writes."""
    from ptychopinn.backends.torch.backend import torch_weights
    from ptychopinn.backends.torch.pretraining import pretrain_torch
    from ptychopinn.model.general import pretraining_settings, probe_statistics
    from ptychopinn.simulation.corpus import Corpus

    settings = pretraining_settings(overrides) if settings is None else _as_settings(settings, overrides)
    if settings.corpus is None:
        raise ValueError("pretraining needs a corpus section in the settings (see pretraining_settings)")
    output_dir = Path(output_dir)
    writer = _is_writing_rank()
    if writer:
        output_dir.mkdir(parents=True, exist_ok=True)
        settings.save(output_dir / SETTINGS_FILE)
    # the network trains on merged groups of corpus.gridsize² patterns; it is the same per-pattern
    # network that the saved settings (data.gridsize) apply to one pattern at a time
    training = settings.with_overrides({"data": {"gridsize": settings.corpus.gridsize}, "model": {"object_big": None}})
    corpus = Corpus(settings.corpus, patch_size, settings.corpus.gridsize, settings.training.seed)
    geometry = ModelGeometry(patch_size, canvas_size_for(patch_size, corpus.max_offset))
    probes = [corpus.sample(PROBE_DRAWS_FROM + i).probe for i in range(PROBE_STATISTICS_SAMPLES)]
    result = pretrain_torch(training, Architecture.from_settings(training, geometry), probes[0], output_dir,
                            resume=Path(resume) if resume else None, quiet=quiet)
    model = TrainedModel(settings, geometry, nominal_scales(patch_size, settings), probes[0],
                         torch_weights(result.model), backend="torch", training_probes=probe_statistics(probes))
    model_path = None
    if writer:
        model_path = model.save(output_dir / MODEL_FILE)
        model.source = model_path
        if result.metrics_csv is not None:
            plot_pretraining_curves(result.metrics_csv, output_dir / "training_curves.png")
        write_json_atomic(output_dir / PRETRAINING_RECORD, {
            "epochs": result.epochs_run, "steps": result.steps_run, "device": result.device,
            "world_size": result.world_size, "wall_seconds_this_run": round(result.wall_seconds, 1),
            "rank_weight_digests": result.rank_weight_digests,
        })
    return PretrainingSummary(model, model_path, output_dir, result.epochs_run, result.steps_run, result.device,
                              result.world_size, result.wall_seconds, result.rank_weight_digests)


PRETRAINING_RECORD = "pretraining.json"  # epochs, steps, device, processes, wall time, rank weight digests
PROBE_STATISTICS_SAMPLES = 256  # training probes drawn to describe the family in the bundle
PROBE_DRAWS_FROM = 2**48  # their sample indices: far beyond any run's training stream


def nominal_scales(patch_size: int, settings: Settings) -> ScaleContract:
    """A general model's scale contract at the corpus's geometric-mean dose. Nothing reads it to
    reconstruct: every scan is normalised by its own input scale and fine-tuning builds the scan's
    own contract (docs/design/spec.md#scaling)."""
    low, high = settings.corpus.dose_range
    counts = float(np.sqrt(low * high))
    scale = (patch_size / 2) / float(np.sqrt(counts))
    return ScaleContract(patch_size=patch_size, probe_scale=settings.physics.probe_scale,
                         probe_mask=settings.physics.probe_mask, input_scale=scale, mean_counts=counts,
                         photon_scale=1 / scale)


def _is_writing_rank() -> bool:
    """False in the processes a distributed launcher started for ranks other than 0."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0
