"""Each method's own typed sub-config: method.selfkd.*, method.ls.*, ...; a value
set in a sub-config the method does not read is refused; the old flat keys (method.alpha_T, ...)
still load, with a deprecation note, and old run folders resume."""
import pytest
import yaml

from classification.methods import RENAMED_KEYS, SECTIONS, MethodConfig, reads, unread_sections
from classification.train import TrainConfig, main, validate
from core.config import ConfigError, load_config, to_dict
from core.methods import method_names
from core.run import config_changes
from core.runlog import read_run_log

TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=96",
        "data.test_subset=64", "data.fit_subset=32", "epochs=2", "optim.batch_size=32",
        "optim.milestones=[1]", "progress=false"]


def test_every_registered_section_is_a_sub_config_and_each_field_lives_in_one():
    sections = {f for f in MethodConfig.__dataclass_fields__ if f != "name"}
    assert sections == set(SECTIONS)
    for name in method_names("classification"):
        assert set(reads(name)) <= sections
    # every old flat key maps to a field of exactly one section
    cfg = load_config(TrainConfig)
    for old, new in RENAMED_KEYS.items():
        node = cfg
        for part in new.split("."):
            node = node[part]
        assert new.split(".")[1] in SECTIONS and old.count(".") == 1


def test_old_flat_keys_load_under_their_new_names_with_one_note(tmp_path, capsys):
    import core.config
    core.config._NOTED.clear()
    (tmp_path / "old.yaml").write_text("method:\n  name: cutmix_selfkd\n  alpha_T: 0.6\n  bank_dtype: float16\n"
                                       "  cutmix_beta: 0.5\n")
    old = load_config(TrainConfig, tmp_path / "old.yaml", ["method.alpha_kind=cosine", "method.cutout_size=4"])
    new = load_config(TrainConfig, None, ["method.name=cutmix_selfkd", "method.selfkd.alpha_T=0.6",
                                          "method.selfkd.bank.dtype=float16", "method.cutmix.beta=0.5",
                                          "method.selfkd.alpha_kind=cosine", "method.cutout.size=4"])
    assert to_dict(old) == to_dict(new)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "method.alpha_T -> method.selfkd.alpha_T" in err[0] and "old.yaml" in err[0]
    assert "method.cutout_size -> method.cutout.size" in err[1] and "command line" in err[1]
    load_config(TrainConfig, tmp_path / "old.yaml")  # the same old keys again: no second note
    assert capsys.readouterr().err == ""
    # an override under the old name beats the file's value under the new one, as any later layer
    (tmp_path / "new.yaml").write_text("method:\n  name: ls\n  ls:\n    eps: 0.2\n")
    assert load_config(TrainConfig, tmp_path / "new.yaml", ["method.ls_eps=0.3"]).method.ls.eps == 0.3


@pytest.mark.parametrize("method,override", [
    ("baseline", "method.selfkd.alpha_T=0.5"), ("ls", "method.cutmix.prob=1.0"),
    ("selfkd", "method.ls.eps=0.2"), ("cutmix_selfkd", "method.cutout.size=4"),
    ("cskd", "method.selfkd.bank.topk=3"), ("tfkd", "method.cskd.lam=2.0"), ("cutout", "method.tfkd.alpha=0.2")])
def test_a_value_for_a_sub_config_the_method_does_not_read_is_refused(method, override):
    cfg = load_config(TrainConfig, None, TINY + [f"method.name={method}", override])
    key, value = override.split("=")
    section = ".".join(key.split(".")[:2])
    with pytest.raises(ConfigError, match=f"{key}={value} is set, but method {method} does not read {section}"):
        validate(cfg)


def test_defaults_of_unread_sub_configs_and_shared_sub_configs_pass():
    # the default value, set explicitly, is no error (every config carries every section's defaults)
    validate(load_config(TrainConfig, None, TINY + ["method.name=baseline", "method.selfkd.alpha_T=0.8"]))
    for method in ("selfkd", "cutout_selfkd", "cutmix_selfkd"):  # all three read method.selfkd
        validate(load_config(TrainConfig, None, TINY + [f"method.name={method}", "method.selfkd.alpha_T=0.5"]))
    validate(load_config(TrainConfig, None, TINY + ["method.name=cutmix_selfkd", "method.cutmix.beta=0.5"]))
    assert set(unread_sections("cutmix_selfkd")) >= {"method.ls", "method.cskd", "method.tfkd", "method.cutout"}
    assert not {"method.selfkd", "method.cutmix"} & set(unread_sections("cutmix_selfkd"))


def test_config_changes_match_old_and_new_key_names():
    old = {"method": {"name": "selfkd", "alpha_T": 0.7, "bank_dtype": "float32"}}
    new = {"method": {"name": "selfkd", "selfkd": {"alpha_T": 0.7, "bank": {"dtype": "float32"}}}}
    assert config_changes(old, new, renames=RENAMED_KEYS) == []
    assert config_changes(old, new) != []  # without the table they are different keys
    changed = {"method": {"name": "selfkd", "selfkd": {"alpha_T": 0.5, "bank": {"dtype": "float32"}}}}
    assert config_changes(old, changed, renames=RENAMED_KEYS) == ["method.selfkd.alpha_T: 0.7 -> 0.5"]
    # an ignored key ignores the keys under it
    assert config_changes(old, changed, ignore=("method.selfkd",), renames=RENAMED_KEYS) == []


def _to_old_layout(config_yaml):
    """A config.yaml as the code before the sub-configs wrote it: flat method keys."""
    cfg = yaml.safe_load(config_yaml.read_text())
    flat = {"name": cfg["method"]["name"]}
    for old, new in RENAMED_KEYS.items():
        node = cfg
        for part in new.split("."):
            node = node[part]
        flat[old.split(".")[1]] = node
    cfg["method"] = flat
    config_yaml.write_text(yaml.safe_dump(cfg))
    return flat


def test_run_folders_with_old_keys_resume(tmp_path, capsys):
    """A run folder whose config.yaml has the flat keys (method.alpha_T, ...) resumes with the new
    keys or the old ones, without a 'changed config' refusal; a real change is still refused,
    named by its new key; a sub-config the method does not read is not compared."""
    run = tmp_path / "table1" / "r"
    args = TINY + [f"out_dir={tmp_path}", "run_id=r", "method.name=selfkd", "stop_after_epochs=1"]
    assert main(args + ["method.selfkd.alpha_T=0.6"]) == 0
    flat = _to_old_layout(run / "config.yaml")
    assert flat["alpha_T"] == 0.6 and "alpha_T:" in (run / "config.yaml").read_text()
    assert main(args + ["method.selfkd.alpha_T=0.5", "--resume"]) == 2  # a real change
    assert "method.selfkd.alpha_T: 0.6 -> 0.5" in capsys.readouterr().err
    assert main(args + ["method.alpha_T=0.6", "--resume"]) == 0  # the old name on the command line
    assert main(args[:-1] + ["method.selfkd.alpha_T=0.6", "--resume"]) == 0  # the new name
    log = read_run_log(run / "log.jsonl", strict=True)
    assert log.complete and not [r for r in log.extra if r.get("type") == "config_change"]
    assert log.meta["alpha_T"] == 0.6 and log.meta["alpha_kind"] == "linear"  # the meta keeps its fields
    # a baseline run whose old config carried a Self-KD alpha (a dataset base config did) resumes
    assert main(TINY + [f"out_dir={tmp_path}", "run_id=b", "stop_after_epochs=1"]) == 0
    cfg = yaml.safe_load((tmp_path / "table1/b/config.yaml").read_text())
    cfg["method"] = {**_to_old_layout(tmp_path / "table1/b/config.yaml"), "alpha_T": 0.7}
    (tmp_path / "table1/b/config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(TINY + [f"out_dir={tmp_path}", "run_id=b", "--resume"]) == 0
    assert read_run_log(tmp_path / "table1/b/log.jsonl", strict=True).complete
