"""The workflow passes Snakemake's own linter."""

from conftest import REPO, snakemake


def test_snakemake_lint_is_clean():
    result = snakemake(REPO, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations, your workflow is in a good condition!" in output, output
