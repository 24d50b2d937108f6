from pathlib import Path

import pytest

from mlpipe.core import ConfigError, InferenceConfig, TrainingConfig, config_from_json, load_config
from tests.support import TINY_INFERENCE, TINY_TRAINING


def test_tiny_configs_load_and_round_trip_through_json() -> None:
    for path in (TINY_TRAINING, TINY_INFERENCE):
        cfg = load_config(path)
        assert config_from_json(cfg.model_dump_json()) == cfg


def test_overrides_are_validated_like_the_file() -> None:
    cfg = load_config(TINY_TRAINING, ["training.epochs=3", "registry.aliases=[a, b]"])
    assert isinstance(cfg, TrainingConfig)
    assert cfg.training.epochs == 3
    assert cfg.registry.aliases == ["a", "b"]
    with pytest.raises(ConfigError, match=r"training.epochs: .*greater than 0"):
        load_config(TINY_TRAINING, ["training.epochs=-1"])


def test_unknown_field_names_the_field_and_lists_allowed_ones() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(TINY_TRAINING, ["training.epoch=2"])
    message = str(info.value)
    assert "training.epoch: unknown field" in message
    assert "epochs" in message and "batch_size" in message


def test_wrong_type_and_bad_choice_are_named() -> None:
    with pytest.raises(ConfigError, match=r"training.batch_size"):
        load_config(TINY_TRAINING, ["training.batch_size=many"])
    with pytest.raises(ConfigError, match=r"data.source"):
        load_config(TINY_TRAINING, ["data.source=s3"])
    with pytest.raises(ConfigError, match=r"data.path is required"):
        load_config(TINY_TRAINING, ["data.source=files"])


def test_missing_file_and_wrong_pipeline_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"needs a 'inference' config"):
        load_config(TINY_TRAINING, pipeline="inference")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: training\ndata: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text("pipeline: training\ndata: {source: files, path: data/x.csv}\n")
    cfg = load_config(cfg_file)
    assert cfg.data.path == tmp_path / "data" / "x.csv"


def test_model_reference_syntax_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"inference\.model"):
        load_config(TINY_INFERENCE, ["inference.model=bad name!"])
    assert isinstance(load_config(TINY_INFERENCE, ["inference.model=m:v3"]), InferenceConfig)


def test_demo_configs_match_the_built_in_defaults() -> None:
    """`mlpipe demo` runs the defaults; configs/demo documents them and must not drift."""
    from tests.support import ROOT

    training = load_config(ROOT / "configs" / "demo" / "training.yaml")
    assert training == TrainingConfig()
    inference = load_config(ROOT / "configs" / "demo" / "inference.yaml")
    assert inference.model_dump(exclude={"inference": {"model"}}) == InferenceConfig().model_dump(
        exclude={"inference": {"model"}}
    )


def test_override_values_that_are_not_yaml_are_plain_strings() -> None:
    cfg = load_config(TINY_TRAINING, ["runtime.schedule=@weekly", "runtime.retries=2"])
    assert cfg.runtime.schedule == "@weekly" and cfg.runtime.retries == 2


def test_cluster_env_refuses_values_that_look_like_secrets() -> None:
    with pytest.raises(ConfigError, match=r"cluster\.env: WANDB_API_KEY look like secrets"):
        load_config(TINY_TRAINING, ["cluster.env={WANDB_API_KEY: abc}"])
    assert load_config(TINY_TRAINING, ["cluster.env={LOG_LEVEL: debug}"]).cluster.env == {
        "LOG_LEVEL": "debug"
    }


def test_malformed_config_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_json("{not json")


def test_relative_model_directory_resolves_against_the_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text("pipeline: training\nmodel: {base: ./models/base}\n")
    assert load_config(cfg_file).model.base == str(tmp_path / "models" / "base")
    named = tmp_path / "named.yaml"
    named.write_text("pipeline: training\nmodel: {base: org/some-model}\n")
    assert load_config(named).model.base == "org/some-model"  # a hub id stays a hub id


def test_cluster_env_keeps_ordinary_settings_that_contain_secret_words() -> None:
    env = {"TOKENIZERS_PARALLELISM": "false", "KEYBOARD_LAYOUT": "us"}
    cfg = load_config(TINY_TRAINING, [f"cluster.env={env}"])
    assert cfg.cluster.env == env


# -- hostile or sloppy YAML -----------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_duplicate_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "pipeline: training\ntraining:\n  epochs: 1\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"line 4: duplicate key 'epochs'"):
        load_config(path)


def test_empty_config_file_is_refused(tmp_path: Path) -> None:
    for text in ("", "# only a comment\n"):
        with pytest.raises(ConfigError, match="config file is empty") as info:
            load_config(_write(tmp_path, text))
        assert info.value.exit_code == 2


def test_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    import time

    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = _write(tmp_path, "pipeline: training\n" + "\n".join(levels) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases are expanded"):
        load_config(path)
    assert time.perf_counter() - started < 5  # refused before anything is expanded


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("inference.batch_size=true", "batch_size: expected a number"),
        ("training.learning_rate=.nan", "learning_rate"),
        ("training.epochs=.inf", "epochs"),
    ],
)
def test_non_numbers_and_non_finite_numbers_are_refused(override: str, field: str) -> None:
    pipeline = "inference" if override.startswith("inference") else "training"
    with pytest.raises(ConfigError, match=field):
        load_config(None, [override], pipeline=pipeline)
