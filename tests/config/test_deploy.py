"""The deployment files agree with each other and with the app (Docker is not run here: the
same topology is exercised without it by tests/e2e/test_scale_out.py)."""

import json
import re
import shlex
import string

import yaml

from audiocache.delivery.zerocopy import UVICORN_OPTIONS
from tests.conftest import REPO

DEPLOY = REPO / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_services_and_volumes():
    services = compose()["services"]
    assert set(services) == {"migrate", "web", "worker", "postgres", "redis", "nginx"}
    # Migrations run once, before web and workers (which then skip them).
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("web", "worker"):
        assert services[name]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert services[name]["environment"]["MIGRATE_ON_START"] == "false"
    for name in ("web", "worker"):
        service = services[name]
        assert service["image"] == "mixtapes:latest" and service["build"]["context"] == ".."
        assert "cache:/cache" in service["volumes"]
        music = [v for v in service["volumes"] if v.endswith(":/music:ro")]
        assert len(music) == 1, f"{name} must mount the music read-only"
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert env["AUDIO_CACHE_SENDFILE"] == "nginx"
    # The worker service scales: no fixed name, no published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    assert services["web"]["environment"]["AUDIO_CACHE_MAX_WORKERS"] == "0"
    assert "--workers" in services["web"]["command"]
    assert services["worker"]["command"][:3] == ["python", "manage.py", "cacheworker"]


def test_nginx_gets_every_placeholder_of_its_template():
    nginx = compose()["services"]["nginx"]
    assert "./nginx.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    assert {"static:/static:ro", "cache:/cache:ro"} <= set(nginx["volumes"])
    assert any(v.endswith(":/music:ro") for v in nginx["volumes"])
    template = (DEPLOY / "nginx.conf").read_text()
    placeholders = {m.group(1) for m in re.finditer(r"\$\{([A-Z_]+)\}", template)}
    assert placeholders == set(nginx["environment"])
    # The official image substitutes only variables it has; nginx's own ($host...) stay.
    rendered = string.Template(template).safe_substitute(nginx["environment"])
    directives = "\n".join(line for line in rendered.splitlines() if not line.lstrip().startswith("#"))
    assert "${" not in directives and "$host" in directives


def test_every_compose_variable_is_in_the_example_env():
    text = (DEPLOY / "docker-compose.yml").read_text()
    used = {m.group(1) for m in re.finditer(r"\$\{([A-Z_]+)(?::?[-?][^}]*)?\}", text)}
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert used <= example, used - example
    required = {m.group(1) for m in re.finditer(r"\$\{([A-Z_]+):\?", text)}
    assert required == {"POSTGRES_PASSWORD", "SECRET_KEY", "MUSIC_DIR"}


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", dockerfile, re.MULTILINE)
    assert len(stages) == 2 and stages[0][1] == "build"
    final = dockerfile.split("\nFROM ", 2)[2]
    assert "COPY --from=build /venv /venv" in final
    assert "pip install" not in final and "gcc" not in final  # nothing is built in the final image
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "collectstatic" in dockerfile.split("\nFROM ", 2)[1]  # at build time
    entrypoint = (DEPLOY / "docker-entrypoint.sh").read_text()
    assert "migrate --noinput" in entrypoint and 'exec "$@"' in entrypoint


def test_every_way_of_serving_starts_uvicorn_with_zero_copy_sends():
    """make run, the image and Compose start uvicorn the same way (audiocache/zerocopy.py)."""

    def options_follow_the_app(argv: list[str]) -> bool:
        at = argv.index("config.asgi:application") + 1
        return tuple(argv[at : at + len(UVICORN_OPTIONS)]) == UVICORN_OPTIONS

    makefile = (REPO / "Makefile").read_text()
    make_options = re.search(r"^UVICORN_OPTIONS := (.*)$", makefile, re.MULTILINE).group(1)
    run_line = next(line for line in makefile.splitlines() if "uvicorn config.asgi:application" in line)
    assert options_follow_the_app(shlex.split(run_line.replace("$(UVICORN_OPTIONS)", make_options)))
    cmd = re.search(r"^CMD (\[.*?\])$", (REPO / "Dockerfile").read_text(), re.MULTILINE | re.DOTALL).group(1)
    assert options_follow_the_app(json.loads(cmd.replace("\\\n", "")))
    assert options_follow_the_app(compose()["services"]["web"]["command"])
