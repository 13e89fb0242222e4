"""Training: `gec train gan` and `gec train encoder` end to end on tiny models, resuming, and bad input."""

from __future__ import annotations

import errno
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gecodec.image_encoding import encode_image
from gecodec.bundle import load_bundle
from gecodec.cli import main
from gecodec.codec import Codec
from gecodec.errors import ImageError, TrainingError
from gecodec.models import ConvDiscriminatorConfig, Generator, GeneratorConfig
from gecodec.train import checkpoint as checkpoint_module
from gecodec.train.checkpoint import load_checkpoint, save_checkpoint
from gecodec.train.data import load_images
from gecodec.train.gan import GanTrainConfig, refresh_batchnorm_stats, train_gan
from gecodec.train.objectives import BeganObjective

from conftest import face_like

TINY_GAN = ["--size", "16", "--channels", "4", "--latent", "8", "--batch-size", "4", "--sample-every", "2",
            "--checkpoint-every", "2", "--log-every", "1"]
TINY_GE1 = ["--m", "8", "--depth", "2", "--filters", "2", "--batch-size", "4"]


def gec(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten small pictures of assorted sizes, some in a subfolder."""
    folder = tmp_path_factory.mktemp("faces")
    (folder / "more").mkdir()
    for i in range(10):
        face_like(20 + i, 16 + i, seed=i).save(folder / ("more" if i % 3 == 0 else ".") / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def began_run(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "began"
    result = gec("train", "gan", "--data", faces, "--out", run, "--steps", "2", *TINY_GAN)
    assert result.exit_code == 0, result.output
    return run


def test_gan_resumes_from_its_checkpoint_and_logs_began_balance(began_run: Path, faces: Path):
    result = gec("train", "gan", "--data", faces, "--out", began_run, "--steps", "3", "--resume")
    assert result.exit_code == 0, result.output
    state = load_checkpoint(began_run / "checkpoint.pt")
    assert state["step"] == 3 and 0.0 <= state["objective"]["k"] <= 1.0
    assert {"g", "d", "g_ema", "g_optim", "d_optim", "config"} <= set(state)
    log = (began_run / "log.jsonl").read_text().splitlines()
    assert len(log) == 3 and '"M"' in log[-1] and '"k"' in log[-1]
    assert (began_run / "samples" / "0000002.png").exists()


@pytest.mark.parametrize("kind", ["ge1", "ge0"])
def test_exported_bundle_round_trips_an_image(began_run: Path, faces: Path, tmp_path: Path, kind: str):
    out = tmp_path / f"tiny-{kind}.safetensors"
    # Validation figures cost a full-length search: measured for one kind only.
    options = [*TINY_GE1, "--steps", "2", "--val", faces, "--val-images", "2"] if kind == "ge1" else []
    result = gec("train", "encoder", "--gan", began_run, "--data", faces, "--kind", kind, "--out", out, *options)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.encoder_kind == kind and bundle.image_size == 16 and bundle.m == 8
    if kind == "ge1":
        assert {"ge_real", "ge_generated", "generator_floor_real", "ae_decoder_real"} <= set(bundle.card["val"])
    assert bundle.card["generator"]["steps"] >= 2 and bundle.card["decode_cost"]["flops_per_search_iteration"] > 0
    codec = Codec(bundle, "cpu")
    data = encode_image(codec, face_like(16, 16))[0]
    image = codec.decode_image(data, iters=3, restarts=1)
    assert image.size == (16, 16)


def test_encoder_training_resumes(began_run: Path, faces: Path, tmp_path: Path):
    args = ["train", "encoder", "--gan", began_run, "--data", faces, *TINY_GE1, "--name", "resumed"]
    assert gec(*args, "--steps", "1", "--out", tmp_path / "a.safetensors").exit_code == 0
    result = gec(*args, "--steps", "2", "--out", tmp_path / "b.safetensors", "--resume")
    assert result.exit_code == 0, result.output
    assert load_bundle(tmp_path / "b.safetensors").card["encoder"]["steps"] == 2


def test_nonsaturating_dcgan_run_trains_and_refuses_ge0(faces: Path, tmp_path: Path):
    run = tmp_path / "dcgan"
    result = gec("train", "gan", "--data", faces, "--out", run, "--arch", "dcgan", "--loss", "nonsaturating",
                 "--prior", "normal", "--steps", "1", *TINY_GAN)
    assert result.exit_code == 0, result.output
    result = gec("train", "encoder", "--gan", run, "--data", faces, "--kind", "ge0")
    assert result.exit_code == 1 and "GE0 needs a BEGAN discriminator" in result.output


def test_ge0_refuses_an_m_other_than_the_embedding(began_run: Path, faces: Path):
    result = gec("train", "encoder", "--gan", began_run, "--data", faces, "--kind", "ge0", "--m", "16")
    assert result.exit_code == 1 and "embedding size, 8" in result.output


def test_resume_with_a_different_configuration_is_refused(began_run: Path, faces: Path):
    result = gec("train", "gan", "--data", faces, "--out", began_run, "--resume", "--channels", "8")
    assert result.exit_code == 1
    assert "different configuration (discriminator.channels 4 in the checkpoint, 8 now" in result.output


def test_a_new_run_does_not_overwrite_an_old_one(began_run: Path, faces: Path):
    result = gec("train", "gan", "--data", faces, "--out", began_run, "--steps", "1", *TINY_GAN)
    assert result.exit_code == 1 and "use --resume" in result.output


def test_corrupt_checkpoint_is_a_clear_error(faces: Path, tmp_path: Path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = gec("train", "gan", "--data", faces, "--out", tmp_path, "--resume")
    assert result.exit_code == 1 and result.output.startswith("gec: error: ") and "unreadable checkpoint" in result.output
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("make", ["empty", "unreadable", "missing"])
def test_unusable_data_is_a_clear_error(tmp_path: Path, make: str):
    data = tmp_path / "data"
    if make != "missing":
        data.mkdir()
    if make == "unreadable":
        (data / "a.png").write_bytes(b"not a png")
    result = gec("train", "gan", "--data", data, "--out", tmp_path / "run", *TINY_GAN)
    assert result.exit_code == 1 and result.output.splitlines()[-1].startswith(f"gec: error: {data}: ")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"step": 1}, path)

    def full_disk(state: dict, target: Path) -> None:
        Path(target).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    with pytest.raises(TrainingError, match="No space left on device"):
        save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1 and list(tmp_path.iterdir()) == [path]


def test_loader_reads_archives_and_skips_unreadable_images(faces: Path, tmp_path: Path):
    with tarfile.open(tmp_path / "faces.tar.gz", "w:gz") as tar:
        tar.add(faces, arcname="faces")
    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as archive:
        for path in sorted(faces.rglob("*.png")):
            archive.write(path, path.relative_to(faces))
        archive.writestr("broken.png", b"not a png")
    folder = load_images(faces, 16)
    assert folder.shape == (10, 3, 16, 16) and folder.dtype == torch.uint8
    assert torch.equal(load_images(tmp_path / "faces.tar.gz", 16), folder)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        assert torch.equal(load_images(tmp_path / "faces.zip", 16), folder)
    with pytest.raises(ImageError, match="not a folder of images or an archive"):
        load_images(faces / "1.png", 16)


def test_began_balance_moves_k_by_lambda_times_the_imbalance():
    objective = BeganObjective(GanTrainConfig(generator=GeneratorConfig(16, 8, 4)).discriminator, gamma=0.5,
                               lambda_k=0.1)
    objective._real_loss = torch.tensor(0.4)
    logs = objective.after_step(torch.tensor(0.1), lambda t: t)
    assert objective.k == pytest.approx(0.1 * (0.5 * 0.4 - 0.1))
    assert logs["M"] == pytest.approx(0.4 + abs(0.5 * 0.4 - 0.1))
    objective.after_step(torch.tensor(5.0), lambda t: t)
    assert objective.k == 0.0  # clamped to [0, 1]


def test_learning_rate_halves_down_to_its_floor():
    config = GanTrainConfig(lr=8e-5, lr_floor=2e-5, lr_halve_every=10)
    assert [config.lr_at(s) for s in (0, 9, 10, 20, 30, 100)] == [8e-5, 8e-5, 4e-5, 2e-5, 2e-5, 2e-5]


def test_ema_generator_gets_batchnorm_statistics_that_fit_its_weights():
    g = Generator(GeneratorConfig(16, 8, 8, arch="dcgan"))
    refresh_batchnorm_stats(g, batches=8, batch_size=64)
    z = torch.randn(512, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eval_out = g.eval()(z)
        train_out = g.train()(z)
    assert torch.allclose(eval_out, train_out, atol=0.05)


def _ddp_worker(rank: int, run_dir: str, port: int) -> None:
    import os

    from gecodec.train.distributed import setup_runtime

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    data = torch.from_numpy(np.stack([np.asarray(face_like(16, 16, seed=i)) for i in range(8)])).permute(0, 3, 1, 2)
    config = GanTrainConfig(generator=GeneratorConfig(16, 8, 4, arch="dcgan"), loss="nonsaturating",
                            discriminator=ConvDiscriminatorConfig(16, 4), batch_size=4, steps=2, sample_every=100)
    train_gan(data.contiguous(), run_dir, config, runtime=setup_runtime("cpu"))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_run_writes_one_checkpoint(tmp_path: Path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the workers inherit the imported modules instead of importing torch again
    torch.multiprocessing.start_processes(_ddp_worker, args=(str(tmp_path), port), nprocs=2, start_method="fork")
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2 and "2 processes" in state["hardware"]


def test_image_folder_of_one_size_only_need_not_match_the_model(tmp_path: Path):
    Image.fromarray(np.zeros((40, 30, 3), np.uint8)).save(tmp_path / "a.jpg")
    assert load_images(tmp_path, 16).shape == (1, 3, 16, 16)
