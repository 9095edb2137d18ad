"""Shared fixtures: the tiny offline model, a local Ray cluster."""

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def tiny_model_path():
    from vital_ray.config import ModelConfig
    from vital_ray.models import ensure_model_folder

    return ensure_model_folder(ModelConfig())


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray cluster (no dashboard), torn down after the module."""
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """Two real 60 s H.264 videos with known events, plus their VITAL-format records."""
    from vital_ray.data.synthetic import generate_dataset

    records, json_path = generate_dataset(str(tmp_path_factory.mktemp("synth")), num_videos=2, duration_s=60.0,
                                          records_per_video=4, seed=3)
    return records, json_path


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory):
    """An mp4 from the ffmpeg CLI, not from our writer: 640x272, 25 fps, 250 frames, B-frames, an AAC track."""
    import subprocess

    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("third_party") / "testsrc2.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x272:rate=25:duration=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "2", "-c:a", "aac", "-shortest", str(path)],
                   check=True)
    return str(path)


@pytest.fixture
def broken_videos(synthetic, tmp_path):
    """{kind: path} of unusable videos: missing, empty, text, truncated (first third), random bytes."""
    data = open(synthetic[0][0].video, "rb").read()
    files = {"missing": tmp_path / "missing.mp4", "empty": tmp_path / "empty.mp4", "text": tmp_path / "text.mp4",
             "truncated": tmp_path / "truncated.mp4", "random": tmp_path / "random.mp4"}
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a video\n" * 100)
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["random"].write_bytes(os.urandom(50_000))
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope="module")
def one_rank():
    """A one-process gloo group for in-process learners, on an in-memory store: no port to race for."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()
