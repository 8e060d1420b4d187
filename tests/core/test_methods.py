"""core.methods: one list of methods, each name spelled out (no parsing of underscores)."""
import pytest

from core.methods import get_method, method_labels, method_names


def test_components_are_registered_not_parsed():
    s = get_method("cutmix_sd_selfkd")
    assert (s.rule, s.regularizer, s.shakedrop) == ("selfkd", "cutmix", True)
    assert (get_method("baseline").rule, get_method("baseline").regularizer) == ("onehot", "none")
    assert get_method("ls").rule == "ls" and get_method("cutout").regularizer == "cutout"


def test_each_method_names_the_sub_configs_it_reads():
    from classification.methods import reads as reads_of
    want = {"baseline": (), "ls": ("ls",), "selfkd": ("selfkd",), "cutout": ("cutout",),
            "cutout_selfkd": ("selfkd", "cutout"), "cutmix": ("cutmix",), "cutmix_selfkd": ("selfkd", "cutmix"),
            "cutmix_sd": ("cutmix",), "cutmix_sd_selfkd": ("selfkd", "cutmix"), "cskd": ("cskd",),
            "tfkd": ("tfkd",), "lwr": ("lwr",), "dlb": ("dlb",), "zipf": ("zipf",)}
    assert {n: reads_of(n) for n in want} == want
    assert all(set(reads_of(n)) <= {get_method(n).rule, get_method(n).regularizer} for n in method_names())


def test_unknown_or_unsupported_names_are_one_line_errors():
    # a name is a method only when registered, never parsed into parts
    with pytest.raises(ValueError, match="unknown method 'cs_kd'"):
        get_method("cs_kd")
    with pytest.raises(ValueError, match="unknown method 'cutmix'"):
        get_method("cutmix", "translation")


def test_one_list_serves_every_task_and_the_reports():
    from classification.methods import METHODS as clf
    from detection.config import BACKBONE_METHODS
    from reports.tables import METHOD_LABELS
    from translation.train import METHODS as mt
    assert clf == method_names() and mt == BACKBONE_METHODS == ("baseline", "ls", "selfkd")
    assert {k: METHOD_LABELS[k] for k in method_labels()} == method_labels()
