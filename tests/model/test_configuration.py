"""Every model setting is declared once (MODEL_SETTINGS): the config and train.py's flags read the same table."""

from __future__ import annotations

import dataclasses

import pytest

from simcse_gs.model import MODEL_SETTINGS, SimCSEGSConfig
from simcse_gs.model.registry import CONTROL_POLICIES, GS_POLICIES, policy_for
from simcse_gs.training.arguments import ModelArguments


def test_the_flags_are_the_settings_with_their_defaults_and_help():
    fields = {f.name: f for f in dataclasses.fields(ModelArguments)}
    for setting in MODEL_SETTINGS:
        assert fields[setting.name].default == setting.command_line_default, setting.name
        assert fields[setting.name].metadata["help"] == setting.help
    assert ModelArguments().model_settings() == {s.name: s.command_line_default for s in MODEL_SETTINGS}
    config = SimCSEGSConfig()
    assert config.settings() == {s.name: s.default for s in MODEL_SETTINGS}
    assert [s.name for s in MODEL_SETTINGS if s.default != s.command_line_default] == ["use_gs"]


@pytest.mark.parametrize(("settings", "message"), [
    ({"keep_budget": 0.0}, r"--keep_budget must be in \(0, 1\], got 0.0"),
    ({"gs_estimator": "nope"}, "--gs_estimator must be one of soft, st, reinforce, topk, hard_concrete"),
    ({"use_gs": True, "token_drop_rate": 0.2}, "use it with --use_gs false"),
    ({"use_gs": True, "gs_estimator": "topk", "gs_target_keep_rate": 0.0}, "topk keeps ceil"),
    ({"head_dropout": 0.1}, "--head_dropout is the dropout of --head_type dropout_mlp"),
])
def test_the_config_and_the_flags_refuse_the_same_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        SimCSEGSConfig(**settings)
    with pytest.raises(ValueError, match=message):
        ModelArguments(**settings)


def test_the_registry_names_the_policy_of_every_setting():
    for name in GS_POLICIES:
        assert policy_for(SimCSEGSConfig(use_gs=True, gs_estimator=name)).name == name
    for name in CONTROL_POLICIES:
        assert SimCSEGSConfig(token_drop_heuristic=name).policy_name == name
    plain = SimCSEGSConfig()
    assert plain.policy_name == "random" and not plain.uses_token_keep  # plain SimCSE: the control at rate 0
    assert SimCSEGSConfig(use_gs=True, gs_estimator="topk", gs_target_keep_rate=0.7).inference_budget == 0.7
    assert SimCSEGSConfig(use_gs=True, keep_budget=0.5).inference_budget == 0.5


def test_gs_hard_is_an_alias_of_st():
    assert ModelArguments(gs_hard=True).gs_estimator == "st"
    assert ModelArguments(gs_estimator="st").gs_hard  # kept consistent in the saved settings
    assert SimCSEGSConfig(gs_hard=True).gs_estimator == "st"
    assert SimCSEGSConfig.from_dict(SimCSEGSConfig(gs_hard=True).to_dict()).gs_estimator == "st"
    with pytest.raises(ValueError, match="contradicts"):
        ModelArguments(gs_hard=True, gs_estimator="reinforce")
    with pytest.raises(ValueError, match="gs_estimator must be one of"):
        ModelArguments(gs_estimator="gumbel")
    with pytest.raises(ValueError, match="gs_reinforce_reward"):
        ModelArguments(gs_estimator="reinforce", gs_reinforce_reward="token")
