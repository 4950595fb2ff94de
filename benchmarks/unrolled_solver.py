"""A prototype for issue 26: a network that uses the scan's overlap at inference, measured against
refinement at the same number of passes on the generalization benchmark's scans.

    python benchmarks/unrolled_solver.py train --out-dir DIR [--steps 400] [--scans-per-step 4]
                                              [--passes 8] [--width 32] [--depth 4] [--threads T]
    python benchmarks/unrolled_solver.py evaluate --model-dir DIR [--passes 8] [--reference-passes 20]
                                                 [--cases PATTERN ...] [--quick] [--results-dir DIR]

The shipped general model reconstructs each pattern alone and scores at the level of its own
back-projected input (docs/lab-notes/2026-12-05-general-model-one-pass.md): one pattern does not
determine its object. This solver is a network whose layers are refinement passes over the whole scan,
so every pattern's overlap with its neighbours acts at inference (docs/design/spec.md#stitching-and-refinement
gives the forward model and the PIE step):

- a pass is ``PASS_BATCHES`` PIE steps, each over a random batch of positions: the batch's exit-wave
  correction (its far field given the measured amplitudes, bad pixels left as predicted) taken back
  to the canvas through the adjoint of the patch extraction and divided by the batch's illumination
  Σ|P|² (floored at a batch's average, + ``PIE_REGULARISATION`` × its maximum), applied with
  heavy-ball momentum: the ``mpie`` optimiser's step (ptychopinn.reconstruction.refine.mpie);
- after each pass a small CNN, one for all passes, reads the canvas, the last step and the
  illumination and adds a correction; the step size and momentum of every pass are learned too;
- the start is refinement's flat object, the probe the scan's own, scaled as refinement scales it
  (ptychopinn.reconstruction.refine.problem): nothing depends on the probe seen in training.

Training needs no ground truth: the loss is the data misfit (mean squared amplitude error over the
valid detector pixels) after each pass, as a log ratio to the flat start's, weighted 2^-(passes
left). Each step draws ``--scans-per-step`` fresh scans of the training families
(ptychopinn.simulation.families): 8 to 12 positions a side, step 0.2 to 0.5 × the probe's diameter,
jitter 0.15 × the step, 1e4 to 1e7 photons, seeded [TRAINING_SEED, step]; disjoint from every
benchmark draw. Checkpoints every 20 steps (atomic) and resumes from the last one in --out-dir.

``evaluate`` runs the generalization benchmark's cases (benchmarks/generalization.py, without the
3000-pattern scan) and scores, per case, phase and amplitude SSIM and wall time of: the learned solver
at --passes passes; the same passes without the CNN (step 1, momentum 0.8: what the learning adds is
the difference); ``refine`` from flat (default options) at --passes and at --reference-passes passes.
Writes benchmarks/results/unrolled_solver_<cpu|gpu>.{json,md}. --quick: tests and CI (seconds).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, add_threads_flag, print_json, use_threads, write_results  # noqa: E402
from generalization import (  # noqa: E402
    JITTER_PER_STEP,
    MEDIAN_GROUPS,
    build_scan,
    case_specs,
    machine_line,
    object_size_for,
    probe_diameter,
    select_cases,
)

from ptychopinn.api import evaluate  # noqa: E402
from ptychopinn.atomic import write_text_atomic  # noqa: E402
from ptychopinn.backends.torch.extract import extract_patches  # noqa: E402
from ptychopinn.backends.torch.ops import far_field_amplitude  # noqa: E402
from ptychopinn.config import RefineOptions  # noqa: E402
from ptychopinn.reconstruction.refine import refine  # noqa: E402
from ptychopinn.reconstruction.refine.mpie import LIT_FRACTION, PIE_REGULARISATION  # noqa: E402
from ptychopinn.reconstruction.refine.problem import RefinementProblem  # noqa: E402
from ptychopinn.reconstruction.result import Reconstruction  # noqa: E402
from ptychopinn.simulation import families  # noqa: E402
from ptychopinn.simulation.simulate import simulate  # noqa: E402

TRAINING_SEED = 777
PLAN_SEED = 0  # the batches' draw: every scan's passes take the same draw, so a run repeats exactly
PASS_BATCHES = 8  # PIE steps per pass, whatever the scan's size: a training scan's pass is an eval scan's
UNLEARNED_MOMENTUM = 0.8  # refinement's default heavy-ball momentum
CHECKPOINT_EVERY = 20
LARGE_SCAN = 1000  # patterns: the benchmark's 3000-pattern case is left out


# ------------------------------------------------------------------------------------------------
# Physics: one scan's tensors and the PIE step over a batch of positions
# ------------------------------------------------------------------------------------------------


@dataclass
class ScanTensors:
    """A scan as refinement sees it: the flat start, the probe scaled to the counts, the measured
    amplitudes, the valid-pixel mask, the patches' top-left corners on the canvas and the
    illumination footprint of all positions."""

    start: torch.Tensor  # (H, W) complex64
    probe: torch.Tensor  # (N, N) complex64
    measured: torch.Tensor  # (M, N, N) float32
    valid: torch.Tensor  # (N, N) float32
    top_left: torch.Tensor  # (M, 2) float64, (row, col)
    illumination: torch.Tensor  # (H, W) float32
    origin_xy: tuple[float, float]

    @classmethod
    def of(cls, scan) -> ScanTensors:
        problem = RefinementProblem(scan, None, RefineOptions(), torch.device("cpu"))
        return cls(problem.complex_canvas().detach().clone(), problem.probe[0].detach(), problem.measured,
                   problem.valid, problem.top_left, torch.tensor(problem.illumination, dtype=torch.float32),
                   problem.origin_xy)

    @property
    def n(self) -> int:
        return self.probe.shape[-1]

    def reconstruction(self, canvas: torch.Tensor) -> Reconstruction:
        """``canvas`` on the lit pixels, as refinement saves its object."""
        obj = canvas.detach().cpu().numpy().astype(np.complex64)
        illumination = self.illumination.numpy()
        covered = illumination >= LIT_FRACTION * illumination.max()
        return Reconstruction(np.where(covered, obj, 0).astype(np.complex64),
                              np.where(covered, illumination, 0).astype(np.float32),
                              (float(self.origin_xy[0]), float(self.origin_xy[1])))


class PatchAdjoint(torch.autograd.Function):
    """The adjoint of :func:`extract_patches`: patches (B, N, N) summed onto a canvas at their
    (fractional) corners. Linear, so its backward is the extraction itself; written out so that
    training backpropagates through it without second-order autograd."""

    @staticmethod
    def forward(ctx, patches: torch.Tensor, top_left: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(top_left)
        ctx.n = patches.shape[-1]
        canvas = torch.zeros(shape, dtype=torch.complex64, requires_grad=True)
        with torch.enable_grad():
            extracted = extract_patches(canvas, top_left, ctx.n)
            (summed,) = torch.autograd.grad(extracted, canvas, grad_outputs=patches.detach().to(torch.complex64))
        return summed

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (top_left,) = ctx.saved_tensors
        return extract_patches(grad, top_left, ctx.n), None, None


def misfit(canvas: torch.Tensor, scan: ScanTensors) -> torch.Tensor:
    """Mean squared amplitude error over the valid detector pixels (refinement's amplitude loss)."""
    predicted = far_field_amplitude(extract_patches(canvas, scan.top_left, scan.n) * scan.probe)
    return torch.sum((predicted - scan.measured) ** 2 * scan.valid) / (len(predicted) * scan.valid.sum())


def exit_wave_correction(canvas: torch.Tensor, scan: ScanTensors, batch: torch.Tensor) -> torch.Tensor:
    """Σ over ``batch`` of conj(P) · (ψ with the measured far-field amplitude − ψ), on the canvas:
    the PIE step's numerator (bad pixels keep the predicted amplitude)."""
    top_left = scan.top_left[batch]
    wave = extract_patches(canvas, top_left, scan.n) * scan.probe
    far = torch.fft.fft2(wave, norm="ortho")
    predicted = torch.fft.fftshift(far.abs(), dim=(-2, -1))
    target = scan.measured[batch] * scan.valid + predicted * (1 - scan.valid)
    projected = far * torch.fft.ifftshift(target, dim=(-2, -1)) / (far.abs() + 1e-6)
    correction = torch.fft.ifft2(projected - far, norm="ortho") * scan.probe.conj()
    return PatchAdjoint.apply(correction, top_left, tuple(scan.start.shape))


def pass_plan(scan: ScanTensors, passes: int) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Per pass, PASS_BATCHES random batches of positions and each one's step denominator: its
    illumination floored at what a batch of its size lights on average, + the regularisation (as
    :class:`ptychopinn.reconstruction.refine.mpie.PieSteps`)."""
    count = len(scan.top_left)
    size = math.ceil(count / PASS_BATCHES)
    generator = torch.Generator().manual_seed(PLAN_SEED)
    intensity = scan.probe.abs().square().to(torch.complex64)
    per_position = scan.illumination / count
    plan = []
    for _ in range(passes):
        steps = []
        for batch in torch.randperm(count, generator=generator).split(size):
            lit = PatchAdjoint.apply(intensity.expand(len(batch), scan.n, scan.n), scan.top_left[batch],
                                     tuple(scan.start.shape)).real
            floored = torch.maximum(lit, len(batch) * per_position)
            steps.append((batch, floored + PIE_REGULARISATION * floored.max()))
        plan.append(steps)
    return plan


# ------------------------------------------------------------------------------------------------
# The network
# ------------------------------------------------------------------------------------------------


CORRECTION_INPUTS = 5  # canvas (real, imaginary), last step (real, imaginary), illumination ÷ its maximum


def correction_features(canvas: torch.Tensor, step: torch.Tensor, lit: torch.Tensor) -> torch.Tensor:
    return torch.stack([canvas.real, canvas.imag, step.real, step.imag, lit])[None]


def zero_output(layer: nn.Conv2d) -> nn.Conv2d:
    """The correction starts at zero, so an untrained solver is the plain PIE passes."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Correction(nn.Module):
    """``cnn``: a plain CNN (3 × 3 convolutions at full resolution, receptive field 2·depth + 1
    pixels) from the correction features to the correction (real, imaginary) added to the canvas."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(CORRECTION_INPUTS, width, 3, padding=1), nn.GELU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.GELU()]
        layers.append(zero_output(nn.Conv2d(width, 2, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, canvas: torch.Tensor, step: torch.Tensor, lit: torch.Tensor) -> torch.Tensor:
        out = self.net(correction_features(canvas, step, lit))[0]
        return torch.complex(out[0], out[1])


class MultiScaleCorrection(nn.Module):
    """``unet``: the same features through ``depth`` levels, each halving the resolution and doubling
    the width, with skips: PIE's slowest errors are smooth (low-frequency phase), beyond a plain
    CNN's few-pixel reach."""

    def __init__(self, width: int, depth: int):
        super().__init__()
        widths = [width * 2**level for level in range(depth)]
        self.down = nn.ModuleList()
        previous = CORRECTION_INPUTS
        for w in widths:
            self.down.append(nn.Sequential(nn.Conv2d(previous, w, 3, padding=1), nn.GELU(),
                                           nn.Conv2d(w, w, 3, padding=1), nn.GELU()))
            previous = w
        self.up = nn.ModuleList(nn.Sequential(nn.Conv2d(widths[i] + widths[i + 1], widths[i], 3, padding=1), nn.GELU())
                                for i in range(depth - 1))
        self.out = zero_output(nn.Conv2d(widths[0], 2, 3, padding=1))

    def forward(self, canvas: torch.Tensor, step: torch.Tensor, lit: torch.Tensor) -> torch.Tensor:
        features = correction_features(canvas, step, lit)
        height, width = features.shape[-2:]
        multiple = 2 ** (len(self.down) - 1)
        x = nn.functional.pad(features, (0, -width % multiple, 0, -height % multiple))
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else nn.functional.avg_pool2d(x, 2))
            skips.append(x)
        for level in reversed(range(len(self.up))):
            x = nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = self.up[level](torch.cat([skips[level], x], dim=1))
        out = self.out(x)[0, :, :height, :width]
        return torch.complex(out[0], out[1])


CORRECTIONS = {"cnn": Correction, "unet": MultiScaleCorrection}


class UnrolledSolver(nn.Module):
    """``passes`` PIE passes over the whole scan with a learned step, momentum and correction each."""

    def __init__(self, passes: int = 8, width: int = 32, depth: int = 4, learned: bool = True,
                 correction: str = "cnn"):
        super().__init__()
        self.passes = passes
        self.step_size = nn.Parameter(torch.ones(passes))
        self.momentum = nn.Parameter(torch.full((passes,), UNLEARNED_MOMENTUM))
        self.correction = CORRECTIONS[correction](width, depth) if learned else None

    def forward(self, scan: ScanTensors) -> list[torch.Tensor]:
        """The canvas after every pass."""
        canvas = scan.start
        lit = scan.illumination / scan.illumination.max()
        velocity = torch.zeros_like(canvas)
        after_pass = []
        for index, steps in enumerate(pass_plan(scan, self.passes)):
            for batch, denominator in steps:
                step = exit_wave_correction(canvas, scan, batch) / denominator
                velocity = self.momentum[index] * velocity + self.step_size[index] * step
                canvas = canvas + velocity
            if self.correction is not None:
                canvas = canvas + self.correction(canvas, velocity, lit)
            after_pass.append(canvas)
        return after_pass


def training_loss(solver: UnrolledSolver, scan: ScanTensors) -> torch.Tensor:
    """Σ_k 2^-(K-1-k) log(misfit after pass k ÷ misfit of the start) / Σ weights."""
    with torch.no_grad():
        start_misfit = misfit(scan.start, scan)
    canvases = solver(scan)
    weights = [0.5 ** (len(canvases) - 1 - k) for k in range(len(canvases))]
    logs = [torch.log(misfit(canvas, scan) / start_misfit) for canvas in canvases]
    return sum(w * value for w, value in zip(weights, logs, strict=True)) / sum(weights)


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def training_scan(rng: np.random.Generator, n: int = 64, per_side: int | None = None):
    """One simulated scan of the training object and probe families."""
    probe_family = str(rng.choice(families.PROBE_FAMILIES))
    object_family = str(rng.choice(families.OBJECT_FAMILIES))
    probe = families.random_probe(probe_family, n, rng)
    step = max(rng.uniform(0.2, 0.5) * probe_diameter(probe), 1.0)
    per_side = per_side or int(rng.integers(8, 13))
    size = object_size_for(n, step, per_side)
    obj = families.random_object(object_family, size, rng)
    return simulate(object=obj, probe=probe, size=size, n=n, step=step, jitter=JITTER_PER_STEP * step,
                    photons=float(10 ** rng.uniform(4, 7)), seed=int(rng.integers(1 << 30)))


def train(args) -> Path:
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(TRAINING_SEED)
    solver = UnrolledSolver(args.passes, args.width, args.depth, correction=args.correction)
    optimiser = torch.optim.Adam(solver.parameters(), lr=args.learning_rate)
    checkpoint = out_dir / "checkpoint.pt"
    first = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        solver.load_state_dict(state["solver"])
        optimiser.load_state_dict(state["optimiser"])
        first = int(state["step"])
        print(f"resuming from step {first}", flush=True)
    started = time.perf_counter()
    with open(metrics_up_to(out_dir / "metrics.csv", first), "a") as metrics:
        for step in range(first, args.steps):
            rng = np.random.default_rng([TRAINING_SEED, step])
            optimiser.zero_grad()
            loss = 0.0
            for _ in range(args.scans_per_step):
                scan_loss = training_loss(solver, ScanTensors.of(training_scan(rng, args.patch_size)))
                (scan_loss / args.scans_per_step).backward()
                loss += float(scan_loss.detach()) / args.scans_per_step
            torch.nn.utils.clip_grad_norm_(solver.parameters(), 1.0)
            optimiser.step()
            elapsed = time.perf_counter() - started
            metrics.write(f"{step},{loss:.5f},{elapsed:.1f}\n")
            metrics.flush()
            done = step + 1
            if done % CHECKPOINT_EVERY == 0 or done == args.steps:
                save_checkpoint(checkpoint, solver, optimiser, done, args)
                eta = elapsed / (done - first) * (args.steps - done)
                print(f"step {done}/{args.steps} loss {loss:.3f} elapsed {elapsed:.0f} s, ETA {eta:.0f} s", flush=True)
    return checkpoint


def metrics_up_to(path: Path, first: int) -> Path:
    """``path`` holding its header and the rows of the steps before ``first``: a run stopped
    between checkpoints logged steps that its resume repeats."""
    rows = path.read_text().splitlines()[1:] if first and path.exists() else []
    kept = [row for row in rows if int(row.split(",")[0]) < first]
    write_text_atomic(path, "\n".join(["step,loss,seconds", *kept]) + "\n")
    return path


def save_checkpoint(path: Path, solver: UnrolledSolver, optimiser, step: int, args) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save({"solver": solver.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                "architecture": {"passes": args.passes, "width": args.width, "depth": args.depth,
                                 "correction": args.correction},
                "patch_size": args.patch_size}, temporary)
    os.replace(temporary, path)


def load_solver(model_dir: Path) -> tuple[UnrolledSolver, int]:
    """(the trained solver, the patch size it was trained at)."""
    state = torch.load(Path(model_dir) / "checkpoint.pt", weights_only=True)
    solver = UnrolledSolver(**state["architecture"])
    solver.load_state_dict(state["solver"])
    return solver.eval(), int(state["patch_size"])


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------


def scored(reconstruction: Reconstruction, scan, seconds: float) -> dict:
    metrics = evaluate(reconstruction, scan)
    return {"phase_ssim": round(float(metrics["phase_ssim"]), 4),
            "amplitude_ssim": round(float(metrics["amplitude_ssim"]), 4), "seconds": round(seconds, 3)}


def solved(solver: UnrolledSolver, scan) -> dict:
    started = time.perf_counter()
    tensors = ScanTensors.of(scan)
    with torch.no_grad():
        canvas = solver(tensors)[-1]
    return scored(tensors.reconstruction(canvas), scan, time.perf_counter() - started)


def refined(scan, passes: int) -> dict:
    started = time.perf_counter()
    result = refine(scan, None, RefineOptions(passes=passes))
    return scored(result.reconstruction, scan, time.perf_counter() - started)


METHODS = ("learned", "unlearned", "refine_same_passes", "refine_reference")


def run_case(spec, learned: UnrolledSolver, patch_size: int, reference_passes: int) -> dict:
    scan, geometry = build_scan(spec, patch_size)
    passes = learned.passes
    unlearned = UnrolledSolver(passes, learned=False)
    return {"case": spec.name, "group": spec.group, **geometry,
            "learned": solved(learned, scan), "unlearned": solved(unlearned, scan),
            "refine_same_passes": refined(scan, passes), "refine_reference": refined(scan, reference_passes)}


def medians(cases: list[dict]) -> dict:
    summary = {}
    for group in MEDIAN_GROUPS:
        members = [c for c in cases if c["group"] == group]
        if members:
            summary[group] = {m: round(statistics.median(c[m]["phase_ssim"] for c in members), 4) for m in METHODS}
    return summary


def markdown(cases: list[dict], summary: dict, passes: int, reference_passes: int) -> str:
    columns = (f"learned, {passes} passes", "same passes, no CNN", f"refine, {passes} passes",
               f"refine, {reference_passes} passes")
    lines = ["# a learned unrolled solver against refinement (phase SSIM / amplitude SSIM / seconds)", "",
             f"{machine_line()}. Every method starts from a flat object with the scan's own probe.", "",
             "| case | group | patterns | " + " | ".join(columns) + " |",
             "|---|---|---|" + "---|" * len(columns)]
    for c in cases:
        cells = [f"{c[m]['phase_ssim']:.3f} / {c[m]['amplitude_ssim']:.3f} / {c[m]['seconds']:.2f}" for m in METHODS]
        lines.append(f"| {c['case']} | {c['group']} | {c['patterns']} | " + " | ".join(cells) + " |")
    for group, values in summary.items():
        lines.append(f"| median phase SSIM, {MEDIAN_GROUPS[group]} |  |  | "
                     + " | ".join(f"{values[m]:.3f}" for m in METHODS) + " |")
    return "\n".join(lines)


def evaluate_cases(args) -> dict:
    solver, patch_size = load_solver(args.model_dir)
    specs = [s for s in select_cases(case_specs(args.quick), args.cases) if s.patterns < LARGE_SCAN]
    cases = []
    for spec in specs:
        cases.append(run_case(spec, solver, patch_size, args.reference_passes))
        print({k: cases[-1][k] for k in ("case", *METHODS)}, flush=True)
    summary = medians(cases)
    payload = {"model_dir": str(args.model_dir), "patch_size": patch_size, "passes": solver.passes, "reference_passes": args.reference_passes,
               "quick": args.quick, "cases": cases, "medians": summary,
               "command": "python benchmarks/unrolled_solver.py " + " ".join(args.argv)}
    text = markdown(cases, summary, solver.passes, args.reference_passes)
    json_path, md_path = write_results(args.out_name, payload, text, args.results_dir)
    print_json({"medians": summary})
    print(f"results: {json_path}, {md_path}")
    return payload


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    training = commands.add_parser("train", help="train a solver (resumes from --out-dir's checkpoint)")
    training.add_argument("--out-dir", type=Path, required=True)
    training.add_argument("--steps", type=int, default=400)
    training.add_argument("--scans-per-step", type=int, default=4)
    training.add_argument("--passes", type=int, default=8)
    training.add_argument("--width", type=int, default=32)
    training.add_argument("--depth", type=int, default=4, help="cnn: layers; unet: resolution levels [4]")
    training.add_argument("--correction", choices=sorted(CORRECTIONS), default="cnn",
                          help="the learned correction after each pass [%(default)s]")
    training.add_argument("--learning-rate", type=float, default=1e-3)
    training.add_argument("--patch-size", type=int, default=64)
    scoring = commands.add_parser("evaluate", help="score a trained solver on the generalization cases")
    scoring.add_argument("--model-dir", type=Path, required=True)
    scoring.add_argument("--reference-passes", type=int, default=20)
    scoring.add_argument("--cases", nargs="+", metavar="PATTERN")
    scoring.add_argument("--quick", action="store_true", help="the benchmark's ~36-pattern scans (tests, CI)")
    scoring.add_argument("--out-name", default=None, help="[unrolled_solver; quick: unrolled_solver_quick]")
    scoring.add_argument("--results-dir", type=Path, default=RESULTS)
    for sub in (training, scoring):
        add_threads_flag(sub)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command == "evaluate":
        args.out_name = args.out_name or ("unrolled_solver_quick" if args.quick else "unrolled_solver")
    return args


def main(argv: list[str] | None = None):
    args = parse_args(argv)
    use_threads(args.threads)
    return train(args) if args.command == "train" else evaluate_cases(args)


if __name__ == "__main__":
    main()
