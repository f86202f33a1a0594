"""``paystab up --config``: overrides, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from paystab.config.problems import ConfigInvalid
from paystab.exceptions import InvalidInput
from paystab.stack.config import load_stack_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return path


def test_overrides_apply(tmp_path: Path) -> None:
    settings = load_stack_config(write(tmp_path, """
seed: 7
routing:
  response_timeout: 1500ms
  breaker: {failure_ratio: 0.1, window: 20s}
providers:
  card-alpha: {latency: {median: 10ms}, fee_bps: 100}
  card-charlie: {enabled: false}
"""))
    assert settings.seed == 7
    assert settings.routing.response_timeout_ms == 1500
    assert settings.routing.breaker.failure_ratio == 0.1 and settings.routing.breaker.window_s == 20
    names = [p.name for p in settings.providers]
    assert "card-charlie" not in names
    alpha = next(p for p in settings.providers if p.name == "card-alpha")
    assert alpha.latency.median_ms == 10 and alpha.fee_bps == 100


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    ("routing:\n  response_timeout: 2\n", 2, "routing.response_timeout", "unit"),
    ("routing:\n  surprise: 1\n", 2, "routing.surprise", "unknown field"),
    ("providers:\n  card-alpha:\n    fee_bps: -1\n", 3, "providers.card-alpha.fee_bps", "too small"),
    ("providers:\n  card-alpha:\n    decline_mix: {declined.nope: 0.1}\n", 3,
     "providers.card-alpha.decline_mix.declined.nope", "unknown decline code"),
    ("seed: [1\n", 2, None, "YAML"),
    ("seed: 1\nseed: 2\n", 2, "seed", "duplicate"),
])
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str | None,
                                         words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InvalidInput) as info:
        load_stack_config(path)
    err = info.value
    assert err.source == str(path) and err.line == line and err.field == field
    assert words in err.message and str(path) in err.message
    assert err.exit_code == 2


def test_yaml12_scalars_every_error_and_did_you_mean(tmp_path: Path) -> None:
    settings = load_stack_config(write(tmp_path, "providers:\n  card-alpha: {countries: [JP, NO]}\n"))
    alpha = next(p for p in settings.providers if p.name == "card-alpha")
    assert alpha.countries == ("JP", "NO")  # Norway, not False
    path = write(tmp_path, "routing:\n  max_attempts: 0\n  respons_timeout: 2s\n"
                           "providers:\n  card-alfa: {fee_bps: 10}\n")
    with pytest.raises(InvalidInput) as info:
        load_stack_config(path)
    text = info.value.message
    assert text.startswith(f"{path}:2: routing.max_attempts: 0 is too small"), text
    assert f"{path}:3: routing.respons_timeout: unknown field" in text
    assert "did you mean 'response_timeout'?" in text
    assert f"{path}:5: providers.card-alfa: unknown provider 'card-alfa' (did you mean " \
           "'card-alpha'?)" in text
    assert isinstance(info.value, ConfigInvalid) and len(info.value.problems) == 3


def test_an_empty_config_is_the_catalog_defaults(tmp_path: Path) -> None:
    from paystab.stack.catalog import StackSettings

    assert load_stack_config(write(tmp_path, "{}\n")) == StackSettings()


def test_the_documented_config_example_loads(tmp_path: Path) -> None:
    from paystab.stack.config import load_stack_config

    docs = (Path(__file__).resolve().parents[1] / "docs" / "providers.md").read_text()
    example = docs.split("### The `--config` file", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    path = tmp_path / "stack.yaml"
    path.write_text(example)
    settings = load_stack_config(path)
    names = [p.name for p in settings.providers]
    assert "card-new" in names and "card-charlie" not in names
    new = next(p for p in settings.providers if p.name == "card-new")
    assert "NO" in new.countries  # YAML 1.2: Norway, not false
