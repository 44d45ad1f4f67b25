"""The container files, checked as far as a machine without a container engine allows.

- docker-compose.yml: the services, health checks, `service_healthy` dependencies, secrets
  without defaults, no source bind mounts; `docker compose config` too when a client with the
  compose plugin is installed.
- Dockerfile: two stages, a non-root user, a HEALTHCHECK, no compiler in the final stage; and
  its build and install commands run as written, in fresh virtual environments, with the
  image's absolute paths mapped into a temporary folder. pip is pointed at a local wheelhouse
  of the dependencies through the environment (as a build behind a package mirror would be),
  built once per dependency set and kept under ~/.cache, so the suite does not download every
  dependency on every run. Lines that change the machine itself (apt-get, users) are not run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# System changes the test must not make on the host; everything else in RUN lines runs.
NOT_RUN = ("apt-get", "groupadd", "useradd")
COMPILERS = ("build-essential", "gcc", "g++", "clang", "make ")
WHEELHOUSE = Path.home() / ".cache" / "hitl-recommender" / "wheelhouse"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [text for word, text in self.instructions if word == keyword]


def _dockerfile() -> list[Stage]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)
    stages: list[Stage] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        else:
            stages[-1].instructions.append((word, rest.strip()))
    return stages


def _compose() -> dict:
    document: dict = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return document


def test_compose_file_wires_db_migrate_web_learner_and_webhooks() -> None:
    services = _compose()["services"]
    assert set(services) == {"db", "migrate", "web", "learner", "webhooks"}
    for name in ("db", "web", "learner", "webhooks"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["hitl", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    web, learner = services["web"], services["learner"]
    assert web["command"][:2] == ["hitl", "serve"] and "--dev" not in web["command"]
    assert web["depends_on"]["db"]["condition"] == "service_healthy"
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert learner["command"][:3] == ["hitl", "learn", "--watch"]
    assert learner["depends_on"]["web"]["condition"] == "service_healthy"
    heartbeat = learner["command"][learner["command"].index("--heartbeat") + 1]
    assert heartbeat in " ".join(learner["healthcheck"]["test"])
    sender = services["webhooks"]
    assert sender["command"][:3] == ["hitl", "webhooks", "--watch"]
    assert sender["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    sender_heartbeat = sender["command"][sender["command"].index("--heartbeat") + 1]
    assert sender_heartbeat in " ".join(sender["healthcheck"]["test"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            assert not str(volume).startswith("."), f"{name} mounts the source tree: {volume}"


def test_compose_secrets_have_no_defaults() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for secret in ("HITL_SECRET_KEY", "POSTGRES_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, secret
        # ${VAR:?message}: compose stops with the message when VAR is unset or empty.
        assert all(use.startswith(":?") for use in uses), (secret, uses)
    assert "change-me" not in text


def test_compose_config_parses_when_the_client_can() -> None:
    docker = shutil.which("docker")
    probe = None
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if docker is None or probe is None or probe.returncode != 0:
        # No compose client on this machine: the YAML and structure checks above stand in.
        assert _compose()["services"]
        return
    env = {**os.environ, "HITL_SECRET_KEY": "x" * 32, "POSTGRES_PASSWORD": "pw"}
    done = subprocess.run(
        [docker, "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck_and_no_compiler() -> None:
    stages = _dockerfile()
    assert len(stages) == 2
    build, runtime = stages
    assert build.name == "build" and runtime.name == "runtime"
    assert any("build-essential" in run for run in build.arguments("RUN"))
    final_runs = " ".join(runtime.arguments("RUN"))
    assert not any(compiler in final_runs for compiler in COMPILERS)
    assert "apt-get" not in final_runs
    copies = runtime.arguments("COPY")
    assert copies == ["--from=build /wheels /wheels"]  # only the wheels, never the source
    (user,) = runtime.arguments("USER")
    assert user not in ("root", "0")
    (check,) = runtime.arguments("HEALTHCHECK")
    assert "/healthz" in check
    assert "hitl" in runtime.arguments("CMD")[0]


def _mapped(command: str, root: Path, python: Path) -> str:
    """A RUN line with the image's absolute paths under `root` and `python` as the interpreter."""
    for image_path in ("/src", "/wheels", "/venv"):
        command = re.sub(rf"(?<![\w/]){image_path}(?=[\s/]|$)", str(root) + image_path, command)
    return re.sub(
        r"(^|&&\s*)python(?=\s)", lambda m: m.group(1) + shlex.quote(str(python)), command
    )


def _dependency_key() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = sorted(project["dependencies"]) + ["python", sys.version.split()[0]]
    return hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]


def _wheelhouse(python: Path) -> Path:
    """Wheels of every dependency, built once per dependency set (the slow, networked part)."""
    house = WHEELHOUSE / _dependency_key()
    if not (house / ".complete").exists():
        document = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        # The build backend too: pip builds the project in an isolated environment from it.
        wanted = [*document["build-system"]["requires"], *document["project"]["dependencies"]]
        house.mkdir(parents=True, exist_ok=True)
        pip = [str(python), "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(house)]
        # Complete it offline from what it already holds; only what is missing is downloaded.
        offline = subprocess.run([*pip, "--no-index", "--find-links", str(house), *wanted])
        if offline.returncode != 0:
            subprocess.run([*pip, "--find-links", str(house), *wanted], check=True)
        (house / ".complete").touch()
    return house


def _venv(path: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


@pytest.mark.slow
def test_dockerfile_build_and_install_lines_run_in_fresh_virtual_environments(
    tmp_path: Path,
) -> None:
    build, runtime = _dockerfile()
    root = tmp_path / "image"
    root.mkdir()
    build_python = _venv(tmp_path / "build-python")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))},
        "PIP_FIND_LINKS": str(_wheelhouse(build_python)),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    ran, skipped = [], []
    workdir = root
    # The build image's `python` makes the wheels; the runtime image's makes /venv itself.
    base_python = Path(getattr(sys, "_base_executable", sys.executable))
    for stage, interpreter in ((build, build_python), (runtime, base_python)):
        for word, text in stage.instructions:
            if word == "WORKDIR":
                workdir = root / text.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif word == "COPY" and not text.startswith("--from="):
                *sources, target = text.split()
                destination = workdir if target in ("./", ".") else workdir / target
                for source in sources:
                    origin = ROOT / source
                    if origin.is_dir():
                        shutil.copytree(
                            origin, destination, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        shutil.copy2(origin, destination)
            elif word == "RUN":
                if text.split()[0] in NOT_RUN:
                    skipped.append(text)
                    continue
                command = _mapped(text, root, interpreter)
                done = subprocess.run(
                    command, shell=True, cwd=workdir, env=env, capture_output=True, text=True
                )
                assert done.returncode == 0, (
                    f"{command}\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
                )
                ran.append(text)
    assert len(ran) == 2 and all(s.split()[0] in NOT_RUN for s in skipped) and len(skipped) == 2
    venv = root / "venv"
    assert not (root / "wheels").exists()  # the runtime stage removes its wheels
    hitl = venv / "bin" / "hitl"
    help_text = subprocess.run([str(hitl), "--help"], capture_output=True, text=True, check=True)
    assert "serve" in help_text.stdout and "learn" in help_text.stdout
    url = f"sqlite:///{tmp_path / 'image.sqlite3'}"
    upgraded = subprocess.run(
        [str(hitl), "db", "upgrade", "--database-url", url], capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    # The installed package carries its templates and migrations (package data), not the tree.
    site = next((venv / "lib").glob("python*/site-packages"))
    assert (site / "curation_app" / "templates" / "base.html").exists()
    assert (site / "migrations" / "versions").is_dir()
