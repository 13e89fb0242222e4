"""Joint models: `gec train joint` on tiny models, the solver inside the one search engine, solver bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from gecodec.bundle import Bundle, load_bundle, save_bundle
from gecodec.catalog import read_metadata
from gecodec.cli import main
from gecodec.codec import Codec
from gecodec.errors import BundleError, OptionError
from gecodec.models import Encoder, EncoderConfig, Generator, GeneratorConfig
from gecodec.models.solver import LatentSolver, SolverConfig
from gecodec.search import SearchOptions, latent_search, objective
from gecodec.train import joint as joint_module
from gecodec.train.checkpoint import load_checkpoint

from conftest import face_folder, face_like

TINY_JOINT = ["--size", "16", "--m", "8", "--latent", "8", "--channels", "8", "--solver-steps", "2", "--batch-size", "4",
              "--sample-every", "2", "--checkpoint-every", "1", "--log-every", "1"]


def gec(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return face_folder(tmp_path_factory.mktemp("faces"), 16, 16, count=8)


def tiny_parts(steps: int = 2, init: str = "learned") -> tuple[Generator, Encoder, LatentSolver]:
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(image_size=16, latent_dim=8, channels=8, arch="dcgan")).eval()
    encoder = Encoder(EncoderConfig(image_size=16, m=8, depth=2, filters=2))
    solver = LatentSolver(SolverConfig(m=8, latent_dim=8, steps=steps, init=init, hidden=16))
    return generator.requires_grad_(False), encoder.requires_grad_(False), solver.eval().requires_grad_(False)


def tiny_joint_bundle(decode: SearchOptions = SearchOptions(iters=3, restarts=1, lr=0.05)) -> Bundle:
    generator, encoder, solver = tiny_parts()
    return Bundle(name="tiny-joint", generator=generator, encoder=encoder, calibration_lo=-torch.ones(8),
                  calibration_hi=torch.ones(8), solver=solver, decode=decode)


def test_joint_training_writes_checkpoints_logs_samples_and_a_bundle(faces: Path, tmp_path: Path):
    run, out = tmp_path / "run", tmp_path / "joint.safetensors"
    result = gec("train", "joint", "--data", faces, "--out", run, "--steps", "2", "--adversarial", "0.1", "--prior", "mmd",
                 *TINY_JOINT, "--bundle", out, "--val", faces, "--val-images", "2", "--decode-iters", "1")
    assert result.exit_code == 0, result.output
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["step"] == 2 and {"model", "ema", "optim", "d", "d_optim", "range"} <= set(state)
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert {"mse", "psnr", "consistency", "prior", "step_size", "d", "g"} <= set(records[0])
    assert (run / "samples" / "0000002.png").exists()
    bundle = load_bundle(out)
    assert bundle.solver is not None and bundle.solver.config.steps == 2
    assert bundle.decode == SearchOptions(iters=1, restarts=1, lr=0.05)
    assert read_metadata(out)["format_version"] == "3"  # an entropy model comes with it
    assert bundle.card["decode_schedule"]["solver_steps"] == 2 and "ge_real" in bundle.card["val"]
    curve = bundle.card["rate"]["val_curve"]
    assert [row["quality"] for row in curve] == list(range(0, 101, 10))
    assert bundle.entropy.default_quality == bundle.card["rate"]["default_quality"]
    assert curve[-1]["bytes"] > curve[0]["bytes"]
    codec = Codec(bundle, "cpu")
    decoded = codec.decode_batch(codec.encode_batch(torch.zeros(1, 3, 16, 16)))
    assert decoded.shape == (1, 3, 16, 16) and torch.isfinite(decoded).all()


def test_a_resumed_joint_run_continues_and_refuses_another_config(faces: Path, tmp_path: Path):
    run = tmp_path / "run"
    assert gec("train", "joint", "--data", faces, "--out", run, "--steps", "1", *TINY_JOINT).exit_code == 0
    result = gec("train", "joint", "--data", faces, "--out", run, "--steps", "2", "--resume")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    refused = gec("train", "joint", "--data", faces, "--out", run, "--steps", "3", "--resume", "--solver-steps", "4")
    assert refused.exit_code != 0 and "solver.steps" in refused.output and "Traceback" not in refused.output
    again = gec("train", "joint", "--data", faces, "--out", run, "--steps", "3", *TINY_JOINT)
    assert again.exit_code != 0 and "--resume" in again.output


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(faces: Path, tmp_path: Path, monkeypatch):
    run = tmp_path / "run"
    assert gec("train", "joint", "--data", faces, "--out", run, "--steps", "1", *TINY_JOINT).exit_code == 0
    honest = joint_module.joint_losses

    def poisoned(*args, **kwargs):
        loss, x_rec, logs = honest(*args, **kwargs)
        return loss * float("nan"), x_rec, logs

    monkeypatch.setattr(joint_module, "joint_losses", poisoned)
    result = gec("train", "joint", "--data", faces, "--out", run, "--steps", "3", "--resume")
    assert result.exit_code != 0 and "loss is nan" in result.output and "Traceback" not in result.output
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 1


def test_joint_training_rejects_inconsistent_settings():
    with pytest.raises(OptionError, match="latent prior"):
        joint_module.JointTrainConfig(generator=GeneratorConfig(latent_prior="uniform"))
    result = gec("train", "joint", "--data", "nowhere", "--out", "x", "--start", "sideways")
    assert result.exit_code != 0 and "sideways" in result.output


def test_the_mmd_prior_term_tells_the_normal_prior_from_a_shifted_or_scaled_one():
    rng = torch.Generator().manual_seed(0)
    z, prior = torch.randn(64, 16, generator=rng), torch.randn(64, 16, generator=rng)
    same = joint_module.mmd_loss(z, prior)
    assert same < joint_module.mmd_loss(z + 1, prior) / 10 and same < joint_module.mmd_loss(z * 2, prior) / 10


def test_the_search_takes_the_solver_start_and_steps_then_adam():
    generator, encoder, solver = tiny_parts()
    targets = torch.randn(3, 8)
    only_solver = latent_search(generator, encoder, targets, [1, 2, 3], SearchOptions(iters=0, restarts=1),
                                solver=solver)
    by_hand = solver.descend(lambda z: objective(encoder(generator(z)), targets, z, SearchOptions.lam),
                             solver.start(targets))
    assert torch.equal(only_solver.z, by_hand)
    refined = latent_search(generator, encoder, targets, [1, 2, 3], SearchOptions(iters=20, restarts=1, lr=0.05),
                            solver=solver)
    assert (refined.objective <= only_solver.objective + 1e-6).all()


def test_a_prior_start_solver_starts_from_the_files_seeded_draw():
    generator, encoder, solver = tiny_parts(init="prior")
    targets = torch.randn(2, 8)
    first = latent_search(generator, encoder, targets, [5, 6], SearchOptions(iters=0, restarts=2), solver=solver)
    again = latent_search(generator, encoder, targets, [5, 6], SearchOptions(iters=0, restarts=2), solver=solver)
    other = latent_search(generator, encoder, targets, [7, 8], SearchOptions(iters=0, restarts=2), solver=solver)
    assert torch.equal(first.z, again.z) and not torch.equal(first.z, other.z)


def test_a_solver_bundle_round_trips_and_decodes_bit_identically(tmp_path: Path):
    path = tmp_path / "joint.safetensors"
    save_bundle(tiny_joint_bundle(), path)
    bundle = load_bundle(path)
    assert bundle.decode == SearchOptions(iters=3, restarts=1, lr=0.05)
    assert torch.equal(bundle.solver.log_step_sizes, tiny_joint_bundle().solver.log_step_sizes)
    codec = Codec(bundle, "cpu")
    files = codec.encode_batch(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert torch.equal(codec.decode_batch(files), codec.decode_batch(files))
    # The caller's settings still override the bundle's schedule.
    assert codec.search_steps(codec.parse(files[0])) == 2 + 3
    assert codec.search_steps(codec.parse(files[0]), iters=10) == 2 + 10


def test_a_bundle_without_a_solver_stays_version_1_with_the_papers_schedule(tiny, tmp_path: Path):
    path = tmp_path / "plain.safetensors"
    save_bundle(tiny, path)
    assert read_metadata(path)["format_version"] == "1" and load_bundle(path).decode == SearchOptions()


def rewrite_config(path: Path, change) -> None:
    metadata = read_metadata(path)
    config = json.loads(metadata["config"])
    change(config)
    save_file(load_file(str(path)), str(path), metadata={**metadata, "config": json.dumps(config)})


@pytest.mark.parametrize("change", [
    lambda c: c["decode"].update(iters=-1),
    lambda c: c["decode"].update(lr=0),
    lambda c: c["decode"].update(restarts=0),
    lambda c: c["solver"].update(steps=1000),
    lambda c: c["solver"].update(init="sideways"),
    lambda c: c["solver"].update(m=9),
    lambda c: c["solver"].pop("latent_dim"),
    lambda c: c["decode"].pop("lr"),
    lambda c: c["decode"].update(momentum=0.9),
], ids=["negative-iters", "zero-lr", "no-restarts", "too-many-steps", "unknown-start", "wrong-m", "missing-solver-field",
        "missing-decode-field", "unknown-decode-field"])
def test_a_bundle_with_a_bad_schedule_is_refused_on_load(tmp_path: Path, change):
    path = tmp_path / "joint.safetensors"
    save_bundle(tiny_joint_bundle(), path)
    rewrite_config(path, change)
    with pytest.raises(BundleError, match="inconsistent model bundle"):
        load_bundle(path)


def test_a_bundle_missing_its_solver_tensors_is_refused(tmp_path: Path):
    path = tmp_path / "joint.safetensors"
    save_bundle(tiny_joint_bundle(), path)
    metadata = read_metadata(path)
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("solver.")}
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(BundleError):
        load_bundle(path)


def test_decoding_a_joint_file_shows_solver_steps_in_progress(tmp_path: Path, model_dir: Path):
    save_bundle(tiny_joint_bundle(), model_dir / "tiny-joint.safetensors")
    face_like().save(tmp_path / "face.png")
    assert gec("encode", tmp_path / "face.png", "-o", tmp_path / "face.gec", "--model", "tiny-joint").exit_code == 0
    result = gec("decode", tmp_path / "face.gec", "-o", tmp_path / "back.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "back.png").exists()


def test_the_recipe_starts_from_the_previous_default_and_fits_its_solver_to_it():
    from gecodec.train.joint_recipe import JOINT_MINUTES, MINUTES, RATE_MINUTES, rate_config, recipe_config

    config = recipe_config(JOINT_MINUTES)
    assert config.init_from == "93851b1c" and JOINT_MINUTES + RATE_MINUTES == MINUTES <= 120
    assert (config.solver.m, config.solver.latent_dim) == (config.encoder.m, config.generator.latent_dim)
    assert config.qualities is None  # stage 1: the noise of 8-bit files
    rate = rate_config(Path("run/stage1.safetensors"), RATE_MINUTES)
    assert rate.init_from == "run/stage1.safetensors" and rate.qualities == (0, 100) and rate.minutes == RATE_MINUTES
    assert rate.solver == config.solver and rate.prior == config.prior


def test_rate_training_starts_from_a_joint_bundle_with_its_solver_and_draws_qualities(faces: Path, tmp_path: Path):
    source = tmp_path / "source.safetensors"
    save_bundle(tiny_joint_bundle(), source)
    run = tmp_path / "rate"
    result = gec("train", "joint", "--data", faces, "--out", run, "--init-from", source, "--qualities", "20", "90",
                 "--steps", "1", "--batch-size", "4", "--size", "16")
    assert result.exit_code == 0, result.output
    config = joint_module.JointTrainConfig.from_dict(load_checkpoint(run / "checkpoint.pt")["config"])
    assert config.qualities == (20, 90) and config.solver == load_bundle(source).solver.config
    model, _ = joint_module.start_model(config)
    assert torch.equal(model.solver.log_step_sizes, load_bundle(source).solver.log_step_sizes)


def test_entropy_noise_is_at_most_half_the_step_of_the_lowest_quality_drawn():
    from gecodec.entropy import quality_steps

    config = joint_module.JointTrainConfig(generator=GeneratorConfig(image_size=16, latent_dim=8, channels=8),
                                           encoder=EncoderConfig(image_size=16, m=8, depth=2, filters=2),
                                           solver=SolverConfig(m=8, latent_dim=8), qualities=(40, 60))
    spread = joint_module.RunningRange(8)
    spread.update(torch.randn(64, 8) * 3)
    noise = joint_module.quantization_noise((256, 8), spread, config, torch.Generator().manual_seed(0))
    assert bool((noise.abs() <= quality_steps()[40] * spread.scale / 2).all())
    assert noise.abs().max() > quality_steps()[60] * spread.scale.min() / 2  # coarser qualities do occur
