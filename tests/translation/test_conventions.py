"""Translation follows the conventions of the other tasks (docs/design.md, "One convention for
the three tasks"): the same Self-KD and label smoothing keys as classification, epochs at the top
level, earlier spellings still loading (so every committed run's command resolves to the config it
logged), and behaviour chosen through the method registry (tests/test_code_shape.py: never by
testing a method's name)."""
import json
import shlex

import pytest

from core.config import load_config, to_dict
from core.methods import get_method, method_names
from core.run import RUNTIME_KEYS, config_changes
from tests.conftest import REPO
from translation.methods import RENAMED_KEYS, RULES, criterion_settings, rule_of
from translation.train import RUNTIME_KEYS as TRANSLATION_RUNTIME_KEYS
from translation.train import TrainConfig, fairseq_argv, run_dir_of

CONFIGS = REPO / "translation" / "configs"


def test_every_method_translation_trains_has_a_rule():
    for name in method_names("translation"):
        assert get_method(name).rule in RULES
    with pytest.raises(ValueError, match="unknown method 'cutmix'"):
        rule_of("cutmix")  # registered, but not for translation


def test_criterion_settings_come_from_the_method_sub_configs():
    over = ["method.selfkd.alpha_T=0.3", "method.selfkd.alpha_kind=cosine", "method.ls.eps=0.2"]
    settings = {name: criterion_settings(load_config(TrainConfig, None, over + [f"method.name={name}"]).method)
                for name in method_names("translation")}
    assert settings == {"baseline": {"alpha_T": 0.0, "alpha_kind": None, "ls_eps": 0.0},
                        "ls": {"alpha_T": 0.0, "alpha_kind": None, "ls_eps": 0.2},
                        "selfkd": {"alpha_T": 0.3, "alpha_kind": "cosine", "ls_eps": 0.0}}
    assert [rule_of(n).snapshot_teacher for n in method_names("translation")] == [False, False, True]


@pytest.mark.parametrize("name,override,refused", [
    ("baseline", "method.selfkd.alpha_T=0.3", True), ("baseline", "method.ls.eps=0.2", True),
    ("ls", "method.selfkd.teacher_mode=train", True), ("selfkd", "method.ls.convention=uniform", True),
    ("ls", "method.ls.eps=0.2", False), ("selfkd", "method.selfkd.alpha_T=0.3", False),
    ("baseline", "method.selfkd.alpha_T=0.7", False),  # the default: changes nothing, accepted
])
def test_a_value_set_where_the_method_does_not_read_is_refused(name, override, refused):
    """As classification: a sub-config value the method never reads would be a config that says
    something the run does not do."""
    from core.config import ConfigError
    from translation.methods import check_unread
    cfg = load_config(TrainConfig, None, [f"method.name={name}", override])
    if not refused:
        check_unread(cfg.method)
        return
    section = override.split(".")[1]
    with pytest.raises(ConfigError, match=f"{override} is set, but method {name} does not read method.{section}"):
        check_unread(cfg.method)


def test_keys_are_spelled_as_in_classification_and_epochs_is_top_level():
    from classification.train import TrainConfig as ClassificationConfig
    t, c = load_config(TrainConfig), load_config(ClassificationConfig)
    # translation's own: the snapshot's mode (its teacher is always the snapshot) and fairseq's LS convention
    assert set(t.method.selfkd) - {"teacher_mode"} <= set(c.method.selfkd)
    assert set(t.method.ls) - {"convention"} == set(c.method.ls)
    assert "epochs" in t and "epochs" in c and "epochs" not in t.optim
    # each task keeps its own default: the paper's 0.7 for translation (Sec. 3.4)
    assert t.method.selfkd.alpha_T == 0.7


def test_earlier_spellings_load_to_the_same_config(tmp_path, capsys):
    (tmp_path / "old.yaml").write_text(
        f"_base_: {CONFIGS / 'multi30k_de_en_ls.yaml'}\n"
        "optim:\n  epochs: 7\nmethod:\n  ls_eps: 0.2\n  ls_convention: uniform\n  alpha_T: 0.5\n")
    old = load_config(TrainConfig, tmp_path / "old.yaml", ["method.alpha_kind=step"])
    new = load_config(TrainConfig, CONFIGS / "multi30k_de_en_ls.yaml",
                      ["epochs=7", "method.ls.eps=0.2", "method.ls.convention=uniform",
                       "method.selfkd.alpha_T=0.5", "method.selfkd.alpha_kind=step"])
    assert to_dict(old) == to_dict(new)
    assert "optim.epochs -> epochs" in capsys.readouterr().err
    # both spellings with different values: one line naming the key to keep
    with pytest.raises(ValueError, match="keep method.selfkd.alpha_T"):
        load_config(TrainConfig, None, ["method.alpha_T=0.5", "method.selfkd.alpha_T=0.3"])


def test_every_committed_run_command_resolves_to_the_config_it_logged():
    """The command in each committed translation log's meta record, loaded by today's code (its
    config file, its overrides under their earlier names), is the config the run logged: an old
    run folder resumes, and its command still means what it meant. The reduced configs now write
    to table `scratch` unless told; the launchers that made these logs name the table themselves
    (tools/cpu_table4*.sh pass table=...), so the logged table is passed here as they pass it."""
    logs = sorted((REPO / "reports" / "runs").rglob("log.jsonl"))
    checked = 0
    for path in logs:
        meta = json.loads(path.read_text().splitlines()[0])
        if meta.get("task") != "translation":
            continue
        argv = shlex.split(meta["command"])[3:]
        overrides = [a for a in argv if "=" in a]
        if not any(a.startswith("table=") for a in overrides):
            overrides.append(f"table={meta['config']['table']}")
        cfg = load_config(TrainConfig, REPO / argv[argv.index("--config") + 1], overrides)
        ignore = RUNTIME_KEYS + TRANSLATION_RUNTIME_KEYS
        assert config_changes(meta["config"], to_dict(cfg), ignore, RENAMED_KEYS) == [], path
        checked += 1
    assert checked >= 18


def test_run_folder_is_out_dir_table_run_id(tmp_path):
    cfg = load_config(TrainConfig, CONFIGS / "multi30k_de_en_selfkd.yaml", [f"out_dir={tmp_path}", "seed=3"])
    assert run_dir_of(cfg) == tmp_path / "table4" / "multi30k_de_en_selfkd_s3"
    # the Table 4 configs keep their folders where they were: runs/table4/<run_id>/
    ls = load_config(TrainConfig, CONFIGS / "multi30k_de_en_ls.yaml")
    assert str(run_dir_of(ls)) == "runs/table4/multi30k_de_en_ls_s1"
    argv = fairseq_argv(cfg, tmp_path, use_cuda=False)
    assert argv[argv.index("--max-epoch") + 1] == "150"
