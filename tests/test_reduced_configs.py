"""Runs started from a reduced config stay out of the paper's tables unless a table is named:
quick experiments land in table "scratch"; the study, pilot, regime and Fig. 2 configs keep the
tables they name, and the scripts that made the committed evidence name theirs."""
from pathlib import Path

import pytest

from core.config import load_config

REPO = Path(__file__).resolve().parents[1]
# the reduced configs that name their own table (pre-registered blocks, Fig. 2)
OWN_TABLE = {"fig2_smallcnn_cpu.yaml": "fig2", "regime_resnet20_cpu.yaml": "regime",
             "regime_resnet20_aug_cpu.yaml": "regime", "study_cpu.yaml": "study",
             "study_resnet20_4k5_aug_e130_cpu.yaml": "study_pilots",
             "study_resnet20_9k_aug_e65_cpu.yaml": "study_pilots",
             "study_resnet20_2k25_aug_e260_cpu.yaml": "study_pilots"}


def test_classification_reduced_configs_default_to_scratch():
    from classification.train import TrainConfig
    files = sorted((REPO / "classification/configs/reduced").glob("*.yaml"))
    assert files
    for f in files:
        table = load_config(TrainConfig, f).table
        assert table == OWN_TABLE.get(f.name, "scratch"), f.name
    # naming a table still works
    f = REPO / "classification/configs/reduced/cifar10jpeg_smallcnn_cpu.yaml"
    assert load_config(TrainConfig, f, ["table=table1"]).table == "table1"


def test_translation_reduced_configs_default_to_scratch():
    pytest.importorskip("fairseq")
    from translation.train import TrainConfig
    files = sorted((REPO / "translation/configs/reduced").glob("*.yaml"))
    assert files
    for f in files:
        assert load_config(TrainConfig, f).table == "scratch", f.name
    # the paper-scale configs keep Table 4
    assert load_config(TrainConfig, REPO / "translation/configs/multi30k_de_en_selfkd.yaml").table == "table4"


@pytest.mark.parametrize("script,config,table", [
    ("tools/cpu_block1.sh", "cifar10jpeg_smallcnn_cpu.yaml", "table1"),
    ("tools/cpu_table4.sh", "multi30k_de_en_cpu.yaml", "table4"),
    ("tools/cpu_table4_converged.sh", "multi30k_de_en_converged_cpu.yaml", "table4"),
    ("tools/gpu_evidence.sh", "cifar10jpeg_preact18.yaml", "table1"),
    ("tools/gpu_evidence.sh", "multi30k_de_en_gpu.yaml", "table4"),
])
def test_the_evidence_scripts_name_their_table(script, config, table):
    """The committed evidence was made with these scripts: their runs must still reach the table."""
    text = (REPO / script).read_text().replace("\\\n", " ")  # continued lines as one
    assert config in text
    lines = [ln for ln in text.splitlines() if (".train --config" in ln or "train()" in ln)
             and f"table={table}" in ln]
    assert lines, f"{script} runs {config} without table={table}"
