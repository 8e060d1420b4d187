"""Train one Table 4 run: fairseq-train with the Self-KD plugin, logged into the repo's run log.

    python -m translation.train --config translation/configs/<row>_<method>.yaml [key=value ...]

Steps, top to bottom:
1. config: TrainConfig defaults <- YAML <- key=value overrides (core.config);
2. run directory ``<out_dir>/<table>/<run_id>/``: ``config.yaml`` (resolved), ``log.jsonl``,
   ``checkpoints/``, owned through ``core.run`` as in every task: locked while in use; an existing
   folder is an error unless ``resume=true`` (``--resume``); with it a run whose log is complete is
   left alone, and if ``checkpoints/checkpoint_last.pt`` exists the run resumes from it (fairseq
   restores model, optimizer, lr schedule and data iterator; the Self-KD teacher is the restored
   model, see task.py) and the log is cut back to the last checkpointed epoch, unless the config
   differs from its ``config.yaml`` (refused with the changed keys; ``resume_changed=allow`` goes
   on and logs them); a folder with nothing to resume is moved aside to
   ``<out_dir>/<table>/.aside/``, never deleted. Checkpoints are read with weights_only=True, an
   unreadable ``checkpoint_last.pt`` falls back to ``checkpoint_best.pt`` (checkpoints.py), and a
   log that lacks its meta record or an epoch the checkpoint holds is refused;
3. fairseq-train in this process (``fairseq_cli.train``), with the plugin as ``--user-dir``, once
   every check has passed (fairseq imports ``--user-dir`` code while parsing its command line).
   Each epoch's record is written just before that epoch's checkpoint (EpochRecords), so any
   kill resumes to the uninterrupted run's log;
4. when all epochs are done (or, with ``optim.patience``, valid NLL has stopped improving): beam search on the test set, BLEU (evaluate.py), ``final`` record.
Bad input gives a one-line error and exit status 2.
"""
from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.cli import RESUME_FLAG, UserError, description, did_you_mean, entry_point, storage_error
from core.config import ConfigError, load_config, parse_with_overrides, to_dict, to_yaml
from core.methods import ALIASES, method_names
from core.notices import epoch_cost_notice, next_steps
from core.run import (RunStart, check_name, check_out_dir, log_complete, owned_run, record_resume,
                      remove_stale_temp_files, run_dir_for)
from core.runlog import RunLogWriter, git_info, now_iso, read_run_log
from translation import quiet_fairseq
from translation.checkpoints import (LAST, Position, checkpoint_position, fairseq_saves, restore_point,
                                     use_fallback)
from translation.methods import RENAMED_KEYS, MethodSection, check_unread, criterion_settings, rule_of

PLUGIN_DIR = Path(__file__).resolve().parent
METHODS = method_names("translation")
PRECISIONS = ("fp32", "fp16", "bf16", "amp")
TEACHER_MODES = ("eval", "train")  # translation.criterion.TEACHER_MODES (which imports fairseq)
RUNTIME_KEYS = ("log_interval",)  # beyond core.run.RUNTIME_KEYS: may change between a run's invocations
LN2 = math.log(2)  # fairseq logs losses in bits; the run log stores nats


@dataclass
class DataSection:
    prep_dir: str = "data/multi30k_de_en"  # translation.data's out_dir: bin/, raw/, tok/
    source_lang: str = "de"
    target_lang: str = "en"
    num_workers: int = 1  # fairseq data loader processes (0: in the main process)


@dataclass
class ModelSection:
    # Sec. 3.4: N = 6, d_model = 512, h = 4 (so d_k = 512 / 4 = 128), d_ff = 1024
    # (= fairseq's transformer_iwslt_de_en), dropout 0.3 as Wu et al. 2019.
    arch: str = "transformer_iwslt_de_en"
    layers: int = 6
    embed_dim: int = 512
    ffn_dim: int = 1024
    heads: int = 4
    dropout: float = 0.3
    attention_dropout: float = 0.0
    share_decoder_input_output_embed: bool = True


@dataclass
class OptimSection:
    patience: int = 0  # > 0: stop once valid NLL has not improved for this many epochs (fairseq's
    # --patience; the run is then complete). Not for Self-KD, whose alpha schedule needs T known.
    max_tokens: int = 4096  # per GPU per step; x update_freq x GPUs = tokens per update
    update_freq: int = 1
    lr: float = 5e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 1e-4
    clip_norm: float = 0.0
    warmup_updates: int = 4000  # inverse-sqrt schedule (Vaswani et al.; fairseq's IWSLT recipe)
    warmup_init_lr: float = 1e-7
    precision: str = "fp32"  # fp32 | fp16 | bf16 | amp; the teacher forward runs in the same


@dataclass
class EvalSection:
    subset: str = "test"
    checkpoint: str = "checkpoint_best.pt"  # lowest valid NLL (valid loss is NLL for all methods)
    # > 0: evaluate the mean weights of the last N epoch checkpoints instead (fairseq's
    # average_checkpoints.py; training then keeps them: --keep-last-epochs N); 0: eval.checkpoint
    average_last: int = 0
    beam: int = 5
    lenpen: float = 1.0


@dataclass
class TrainConfig:
    table: str = "table4"
    row: str = "multi30k_de_en"  # multi30k_de_en | iwslt15_en_de | iwslt15_de_en
    run_id: str = ""  # default <row>_<method>_s<seed>
    out_dir: str = "runs"  # the run folder is <out_dir>/<table>/<run_id>/
    epochs: int = 150  # T of Eq. 5; with optim.patience > 0, the cap
    resume: bool = False  # continue the run in an existing folder (else an existing folder is an error)
    resume_changed: str = "refuse"  # refuse | allow: resume although the config differs (logged)
    stop_after_epochs: int = 0  # >0: stop after this many epochs in this invocation (time-sliced jobs)
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda
    log_interval: int = 100  # updates between fairseq's mid-epoch lines (stdout only)
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    method: MethodSection = field(default_factory=MethodSection)
    eval: EvalSection = field(default_factory=EvalSection)
    fairseq_args: list[str] = field(default_factory=list)  # appended verbatim to fairseq-train

    RENAMED_KEYS = RENAMED_KEYS  # earlier spellings -> keys now (translation.methods; not a field)


def _at_least(cfg, low, *keys) -> None:
    for key in keys:
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        if value < low:
            raise ConfigError(f"{key} must be >= {low}, got {value}")


def check(cfg) -> None:
    """Value checks the dataclass types cannot express; ConfigError names the key."""
    _at_least(cfg, 1, "optim.max_tokens", "optim.update_freq", "model.layers", "model.embed_dim",
              "model.ffn_dim", "model.heads", "eval.beam", "log_interval")
    _at_least(cfg, 0, "optim.warmup_updates", "data.num_workers", "seed", "eval.average_last")
    m, o = cfg.model, cfg.optim
    if m.embed_dim % m.heads:
        raise ConfigError(f"model.heads={m.heads} must divide model.embed_dim={m.embed_dim} "
                          "(each head attends in embed_dim / heads dimensions)")
    for key, value in (("model.dropout", m.dropout), ("model.attention_dropout", m.attention_dropout),
                       ("method.ls.eps", cfg.method.ls.eps)):
        if not 0 <= value < 1:
            raise ConfigError(f"{key} must be in [0, 1), got {value}")
    if not 0 <= cfg.method.selfkd.alpha_T <= 1:
        raise ConfigError(f"method.selfkd.alpha_T must be in [0, 1], got {cfg.method.selfkd.alpha_T}")
    if not o.lr > 0 or not math.isfinite(o.lr):
        raise ConfigError(f"optim.lr must be a positive number, got {o.lr}")
    for key in ("table", "row"):  # names reports build file names from
        check_name(getattr(cfg, key), key)
    if cfg.method.name not in METHODS:
        raise ConfigError(f"method.name must be one of {', '.join(METHODS)}, got {cfg.method.name!r}"
                          f"{did_you_mean(cfg.method.name, METHODS, aliases=ALIASES)}")
    check_unread(cfg.method)  # none set that the method does not read
    if cfg.optim.precision not in PRECISIONS:
        raise ConfigError(f"optim.precision must be one of {', '.join(PRECISIONS)}, "
                         f"got {cfg.optim.precision!r}")
    if cfg.epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {cfg.epochs}")
    if cfg.optim.patience < 0:
        raise ConfigError(f"optim.patience must be >= 0, got {cfg.optim.patience}")
    if cfg.optim.patience and rule_of(cfg.method.name).snapshot_teacher:
        raise ConfigError(f"optim.patience: the alpha schedule of method {cfg.method.name} (Eq. 5) needs T "
                         "fixed in advance; set epochs to the baseline's converged epoch instead")
    if cfg.method.selfkd.teacher_mode not in TEACHER_MODES:
        raise ConfigError(f"method.selfkd.teacher_mode must be one of {', '.join(TEACHER_MODES)}, "
                         f"got {cfg.method.selfkd.teacher_mode!r}")
    if cfg.eval.average_last > cfg.epochs:
        raise ConfigError(f"eval.average_last={cfg.eval.average_last} needs as many epoch checkpoints "
                         f"but epochs={cfg.epochs}")
    if cfg.resume_changed not in ("refuse", "allow"):
        raise ConfigError(f"resume_changed must be refuse or allow, got {cfg.resume_changed!r}")
    if cfg.stop_after_epochs < 0:
        raise ConfigError(f"stop_after_epochs must be >= 0, got {cfg.stop_after_epochs}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {cfg.device!r}")
    bin_dir = Path(cfg.data.prep_dir) / "bin"
    for lang in (cfg.data.source_lang, cfg.data.target_lang):
        if not (bin_dir / f"dict.{lang}.txt").is_file():
            raise ConfigError(f"data.prep_dir: {bin_dir / f'dict.{lang}.txt'} not found "
                              "(run python -m translation.data first)")


def run_dir_of(cfg) -> Path:
    """<out_dir>/<table>/<run_id>/ (names checked: nothing outside out_dir)."""
    return run_dir_for(cfg.out_dir, cfg.table, cfg.run_id or f"{cfg.row}_{cfg.method.name}_s{cfg.seed}")


def fairseq_argv(cfg, save_dir: Path, use_cuda: bool) -> list[str]:
    """The fairseq-train command line for cfg (printed into the log's meta record)."""
    m, o, me = cfg.model, cfg.optim, cfg.method
    crit = criterion_settings(me)
    argv = [
        str(Path(cfg.data.prep_dir) / "bin"),
        "--user-dir", str(PLUGIN_DIR), "--task", "self_kd_translation",
        "--source-lang", cfg.data.source_lang, "--target-lang", cfg.data.target_lang,
        "--arch", m.arch,
        "--encoder-layers", str(m.layers), "--decoder-layers", str(m.layers),
        "--encoder-embed-dim", str(m.embed_dim), "--decoder-embed-dim", str(m.embed_dim),
        "--encoder-ffn-embed-dim", str(m.ffn_dim), "--decoder-ffn-embed-dim", str(m.ffn_dim),
        "--encoder-attention-heads", str(m.heads), "--decoder-attention-heads", str(m.heads),
        "--dropout", str(m.dropout), "--attention-dropout", str(m.attention_dropout),
        "--optimizer", "adam", "--adam-betas", f"({o.adam_betas[0]}, {o.adam_betas[1]})",
        "--weight-decay", str(o.weight_decay), "--clip-norm", str(o.clip_norm),
        "--lr", str(o.lr), "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", str(o.warmup_updates), "--warmup-init-lr", str(o.warmup_init_lr),
        "--max-tokens", str(o.max_tokens), "--update-freq", str(o.update_freq),
        "--max-epoch", str(cfg.epochs), "--patience", str(o.patience if o.patience > 0 else -1),
        "--criterion", "self_kd_cross_entropy",
        "--selfkd-alpha-T", str(crit["alpha_T"]), "--selfkd-alpha-kind", me.selfkd.alpha_kind,
        "--selfkd-teacher-mode", me.selfkd.teacher_mode,
        "--ls-eps", str(crit["ls_eps"]), "--ls-convention", me.ls.convention,
        # Epoch-end checkpoints only: the Self-KD teacher of a resumed run is the restored model,
        # which must be an end-of-epoch model (task.py). checkpoint<epoch>.pt only as many as
        # eval.average_last averages.
        "--save-dir", str(save_dir), "--save-interval-updates", "0",
        *(["--keep-last-epochs", str(cfg.eval.average_last)] if cfg.eval.average_last
          else ["--no-epoch-checkpoints"]),
        # One process: the paper's 4,096 tokens a batch is one GPU's batch, and fairseq's
        # multi-GPU spawn would run training in child processes this log does not hear from.
        "--distributed-world-size", "1",
        "--seed", str(cfg.seed), "--num-workers", str(cfg.data.num_workers),
        "--log-format", "json", "--log-interval", str(cfg.log_interval),
    ]
    if m.share_decoder_input_output_embed:
        argv.append("--share-decoder-input-output-embed")
    if not use_cuda:
        argv.append("--cpu")
    if o.precision != "fp32":
        argv.append(f"--{o.precision}")
    return argv + list(cfg.fairseq_args)


def epochs_since_best(valid: list[float]) -> int:
    """Epochs after the first lowest valid loss (fairseq's strict ``<``): what --patience counts."""
    best = min(range(len(valid)), key=lambda i: (valid[i], i)) if valid else -1
    return len(valid) - 1 - best


def converged(log, patience: int) -> bool:
    """Whether a run with early stopping has stopped: valid NLL not improved for ``patience``."""
    valid = [e["valid_loss"] for e in log.epochs if e.get("valid_loss") is not None]
    return patience > 0 and bool(valid) and epochs_since_best(valid) >= patience


class StopAfterEpoch(Exception):
    """Raised by EpochRecords once the epoch ``stop_after_epochs`` asked for is logged."""


class EpochRecords(logging.Handler):
    """Writes one run-log ``epoch`` record per epoch of fairseq-train.

    At the end of epoch t fairseq validates (its JSON "valid" line, held here), saves the
    checkpoint, then prints the epoch's training averages (its "train" line). The record is
    written when the checkpoint is about to be saved (before_checkpoint: the training meters
    the "train" line is printed from, formatted as it formats them), so a checkpoint never holds
    an epoch the log lacks: a kill in between leaves the log one epoch ahead, and the resume cuts
    it back and trains that epoch again. An epoch that gets no checkpoint (fairseq's
    --save-interval > 1 in fairseq_args) is recorded from its "train" line. By the "train" line
    epoch t's checkpoint is on disk, so ``stop_at`` (an epoch, 0 = never) ends training there:
    StopAfterEpoch is raised through fairseq's print to run_fairseq_train."""

    def __init__(self, writer: RunLogWriter, progress=None, stop_at: int = 0, cost=None):
        super().__init__(level=logging.INFO)
        self.writer = writer
        self.progress = progress  # print(str) for the progress lines, or None
        self.stop_at = stop_at
        # cost(epoch, training seconds) -> the CPU cost notice or None, asked once, after the
        # first epoch this invocation trains (None: on a GPU)
        self.cost = cost
        self.valid: dict[int, dict] = {}
        self.last_epoch = 0
        self.best_valid = math.inf

    def emit(self, record: logging.LogRecord) -> None:
        if record.name not in ("train", "valid", "train_inner"):
            return
        try:
            stats = json.loads(record.getMessage())
        except json.JSONDecodeError:
            return
        epoch = int(stats["epoch"])
        if record.name == "train_inner":  # every log_interval updates within an epoch
            if self.progress is not None:
                self.progress(f"epoch {epoch} | update {stats.get('num_updates')} | train loss "
                              f"{float(stats.get('loss', 'nan')) * LN2:.3f} nats | lr "
                              f"{float(stats.get('lr', 'nan')):.3g} | {float(stats.get('wall', 0)):.0f} s")
            return
        if record.name == "valid":
            self.valid[epoch] = stats
            return
        if epoch > self.last_epoch:
            self._write(stats)
        if self.stop_at and epoch >= self.stop_at:
            raise StopAfterEpoch(epoch)

    def before_checkpoint(self, epoch: int) -> None:
        from fairseq.logging import metrics
        from fairseq.logging.progress_bar import format_stat
        train = metrics.get_smoothed_values("train")
        self._write({"epoch": epoch, **{f"train_{k}": format_stat(v) for k, v in train.items()}})

    def _write(self, stats: dict) -> None:
        """The record (and the progress line) of the epoch whose training averages are ``stats``
        (keys as fairseq's "train" line)."""
        epoch = int(stats["epoch"])
        v = self.valid.pop(epoch, {})
        if self.progress is not None:
            vn = None if v.get("valid_nll_loss") is None else float(v["valid_nll_loss"]) * LN2
            self.best_valid = min(self.best_valid, vn) if vn is not None else self.best_valid
            self.progress(f"epoch {epoch} done | train loss {float(stats['train_loss']) * LN2:.3f} | "
                          + (f"valid NLL {vn:.3f} (best {self.best_valid:.3f}) | " if vn is not None else "")
                          + f"{float(stats.get('train_train_wall', 0.0)):.0f} s training")

        def nats(d, key):
            return None if d.get(key) is None else float(d[key]) * LN2

        self.writer.epoch(
            epoch=epoch,
            alpha=float(stats.get("train_alpha", 0.0)),
            lr=float(stats["train_lr"]),
            train_loss=nats(stats, "train_loss"),
            train_nll=nats(stats, "train_nll_loss"),
            valid_loss=nats(v, "valid_loss"),
            valid_nll=nats(v, "valid_nll_loss"),
            valid_ppl=None if v.get("valid_ppl") is None else float(v["valid_ppl"]),
            teacher_epoch=int(stats.get("train_teacher_epoch", 0)) or None,
            num_updates=int(stats["train_num_updates"]),
            epoch_wall_s=float(stats.get("train_train_wall", 0.0)),
        )
        self.last_epoch = epoch
        if self.cost is not None:
            notice, self.cost = self.cost(epoch, float(stats.get("train_train_wall", 0.0))), None
            if notice and self.progress is not None:
                self.progress(notice)


def parse_fairseq_args(argv: list[str]):
    """fairseq's own parse of the command line, run before anything is written: a bad
    ``fairseq_args`` entry is a one-line ConfigError (fairseq would print its 100-line usage)."""
    import contextlib
    import io

    from fairseq import options

    import translation
    translation.register()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    except SystemExit:
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        raise ConfigError(f"fairseq rejected the command line (check fairseq_args): "
                          f"{lines[-1] if lines else 'no message'}") from None


def run_fairseq_train(args, writer: RunLogWriter, valid_so_far: list[float] = (), progress=None,
                      stop_at: int = 0, cost=None) -> int:
    """fairseq-train in this process (``args``: parse_fairseq_args' result); returns the last
    epoch written to the log.

    ``valid_so_far``: the valid losses (nats) of the epochs a resumed run has done, so fairseq's
    early-stopping counter continues where it was (fairseq keeps it in memory only). ``stop_at``:
    stop once this epoch is logged and checkpointed (0: train to the end). ``cost``: EpochRecords'
    (the CPU cost notice after the first epoch)."""
    from fairseq import distributed_utils
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train as fairseq_train

    # fairseq keeps the early-stopping counter as function attributes: a second run in this
    # process would inherit the first one's (the best loss of checkpoints: see fairseq_saves).
    for attr in ("best", "num_runs"):
        if hasattr(fairseq_train.should_stop_early, attr):
            delattr(fairseq_train.should_stop_early, attr)
    if valid_so_far:
        fairseq_train.should_stop_early.best = min(valid_so_far) / LN2  # fairseq compares bits
        fairseq_train.should_stop_early.num_runs = epochs_since_best(list(valid_so_far))

    fs_cfg = convert_namespace_to_omegaconf(args)
    handler = EpochRecords(writer, progress, stop_at, cost)
    if valid_so_far:
        handler.best_valid = min(valid_so_far)
    progress_logger = logging.getLogger("fairseq.logging.progress_bar")
    progress_logger.addHandler(handler)
    old_level = progress_logger.level
    progress_logger.setLevel(logging.INFO)  # the epoch lines are INFO, whatever the root level
    try:
        with fairseq_saves(handler.before_checkpoint):
            distributed_utils.call_main(fs_cfg, fairseq_train.main)
    except StopAfterEpoch:
        pass
    finally:
        progress_logger.removeHandler(handler)
        progress_logger.setLevel(old_level)
    return handler.last_epoch


@dataclass
class Job:
    """One invocation of a run, once its folder is owned: what _train needs."""
    cfg: object
    command: str
    start: RunStart
    use_cuda: bool
    argv: list[str]  # the fairseq-train command line (the meta record's)
    fs_args: object = None  # its parse (parse_fairseq_args)
    resume: Position | None = None  # the checkpoint a resume starts from
    progress: object = print

    @property
    def save_dir(self) -> Path:
        return self.start.run_dir / "checkpoints"

    @property
    def log_path(self) -> Path:
        return self.start.run_dir / "log.jsonl"


def train(cfg, command: str, progress=print) -> Path:
    """One run (see the module docstring). ``progress``: print-like for the progress lines
    (within an epoch every ``log_interval`` updates, and at its end), or None for none."""
    check(cfg)
    import torch

    run_dir = run_dir_of(cfg)
    check_out_dir(cfg.out_dir)
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but torch.cuda.is_available() is False")
    if cfg.optim.precision != "fp32" and not use_cuda:  # fairseq's fp16 / amp need CUDA, bf16 a TPU or GPU
        where = "device=cpu" if torch.cuda.is_available() else "this machine has no CUDA GPU"
        raise ConfigError(f"optim.precision={cfg.optim.precision} needs a CUDA GPU ({where}); "
                          "use optim.precision=fp32 on the CPU")
    argv = fairseq_argv(cfg, run_dir / "checkpoints", use_cuda)
    try:
        # the folder: locked, an existing one continued only with resume=true, the config checked
        # against config.yaml (a key under an earlier spelling is the same key), nothing deleted
        with owned_run(run_dir, to_dict(cfg), cfg.resume, run_dir / "checkpoints" / LAST,
                       cfg.resume_changed, RENAMED_KEYS, ignore=RUNTIME_KEYS) as start:
            if start.state == "complete":
                print(f"translation.train: {run_dir} is complete; nothing to do")
                return run_dir
            job = Job(cfg, command, start, use_cuda, argv, progress=progress)
            if start.state == "resume":
                job.resume = resume_point(job)
            # fairseq's parse imports the --user-dir modules fairseq_args may name: only now that
            # every check of the config and of the run folder has passed
            job.fs_args = parse_fairseq_args(argv)
            return _train(job)
    except OSError as e:
        if e.filename is None and storage_error(e):  # fairseq writes through file objects
            e.filename = str(run_dir)
        raise


def resume_point(job: Job) -> Position:
    """Every check of a resume, before anything in the folder changes: the log is there with its
    meta record, a checkpoint is readable (checkpoint_last.pt, else checkpoint_best.pt), and the
    log holds a record of each epoch that checkpoint has trained (the records are written before
    their checkpoints, so a missing one means a damaged log: refused, not silently dropped)."""
    run_dir = job.start.run_dir
    if not job.log_path.is_file():
        raise UserError(f"{job.save_dir / LAST} exists but {job.log_path} does not: cannot resume "
                        f"the run log; move {run_dir} away to start afresh")
    remove_stale_temp_files(job.save_dir)  # a checkpoint write cut off by a kill
    pos = restore_point(job.save_dir)
    if pos.mid_epoch and rule_of(job.cfg.method.name).snapshot_teacher:
        raise UserError(f"{pos.path} was saved mid-epoch: the Self-KD teacher (the model at the "
                        "end of the previous epoch) cannot be rebuilt from it")
    log = read_run_log(job.log_path)
    why = f" ({log.warnings[0]})" if log.warnings else ""
    if log.meta is None:
        raise UserError(f"{job.log_path} has no meta record{why}: cannot resume the run log; "
                        f"move {run_dir} away to start afresh")
    have = {e["epoch"] for e in log.epochs}
    missing = [t for t in range(1, pos.epochs + 1) if t not in have]
    if missing:
        raise UserError(f"{job.log_path} lacks the record of epoch {missing[0]}, which "
                        f"{pos.path.name} has trained{why}: cannot resume the run log; move "
                        f"{run_dir} away to start afresh")
    return pos


def _write_meta(job: Job, writer: RunLogWriter) -> None:
    import fairseq
    import torch
    cfg, me = job.cfg, job.cfg.method
    commit, dirty = git_info(PLUGIN_DIR)
    writer.meta(
        run_id=job.start.run_dir.name, task="translation", method=me.name,
        model=(f"{cfg.model.arch} N={cfg.model.layers} d_model={cfg.model.embed_dim} "
               f"h={cfg.model.heads} d_ff={cfg.model.ffn_dim}"),
        dataset=cfg.row, seed=cfg.seed, config=to_dict(cfg), git_commit=commit,
        git_dirty=dirty, torch=torch.__version__, device="cuda" if job.use_cuda else "cpu",
        started=now_iso(), table=cfg.table, row=cfg.row, epochs=cfg.epochs,
        **criterion_settings(me), command=job.command,
        fairseq=fairseq.__version__, fairseq_train_args=job.argv,
    )


def _train(job: Job) -> Path:
    """train() inside the run folder it owns: the log's head, fairseq-train, the evaluation."""
    cfg, run_dir = job.cfg, job.start.run_dir
    writer = RunLogWriter(job.log_path)
    done = 0
    if job.resume is not None:
        note = use_fallback(job.resume, job.save_dir)
        if note:
            print(f"translation.train: {note}", file=sys.stderr)
        done = job.resume.epochs
        record_resume(writer, run_dir, done, cfg.epochs, job.start.changes, to_yaml(cfg),
                      job.command)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
        _write_meta(job, writer)
    log = read_run_log(job.log_path)
    valid = [e["valid_loss"] for e in log.epochs if e.get("valid_loss") is not None]
    if not converged(log, cfg.optim.patience):  # (a converged run cut off in its evaluation)
        stop_at = done + cfg.stop_after_epochs if cfg.stop_after_epochs > 0 else 0
        run_fairseq_train(job.fs_args, writer, valid, job.progress, stop_at, _cost_notice(job, stop_at))
    last = job.save_dir / LAST
    pos = checkpoint_position(last) if last.is_file() else Position(last, 0, False, 0.0)
    return _finish(job, writer, pos)


def _cost_notice(job: Job, stop_at: int):
    """On a CPU: (epoch, its training seconds) -> what the epochs this invocation will still train
    cost (core.notices.epoch_cost_notice; with early stopping, the cap); None on a GPU."""
    if job.use_cuda:
        return None
    last = min(job.cfg.epochs, stop_at) if stop_at else job.cfg.epochs
    return lambda epoch, seconds: epoch_cost_notice(seconds, epoch, last - epoch, job.cfg.optim.patience > 0)


def _finish(job: Job, writer: RunLogWriter, pos: Position) -> Path:
    """Beam search and BLEU once all epochs are trained (or early stopping has stopped the run),
    and the final record; else a note that the run can be resumed."""
    cfg, run_dir, done = job.cfg, job.start.run_dir, pos.epochs
    t_eval = time.time()
    log = read_run_log(job.log_path)
    stopped_early = done < cfg.epochs and converged(log, cfg.optim.patience)
    if done < cfg.epochs and not stopped_early:
        print(f"translation.train: stopped after epoch {done} of {cfg.epochs}; "
              "run the same command with --resume to continue")
        return run_dir
    from translation.evaluate import bleu_scores, translate
    checkpoint, averaged = job.save_dir / cfg.eval.checkpoint, None
    if cfg.eval.average_last:
        from translation.checkpoints import last_epoch_checkpoints, write_averaged
        averaged = last_epoch_checkpoints(job.save_dir, cfg.eval.average_last)
        checkpoint = write_averaged(averaged, job.save_dir / f"checkpoint_avg_last{len(averaged)}.pt")
    hyps = translate(checkpoint, Path(cfg.data.prep_dir) / "bin",
                     cfg.eval.subset, cfg.eval.beam, cfg.eval.lenpen,
                     device="cuda" if job.use_cuda else "cpu", fp16=cfg.optim.precision == "fp16")
    scores = bleu_scores(hyps, cfg.data.prep_dir, cfg.eval.subset, cfg.data.target_lang)
    print(f"translation.train: {run_dir.name}: BLEU {scores['bleu']:.2f} (detok, "
          f"{scores['sacrebleu_signature']}), tokenised BLEU {scores['bleu_tok']:.2f}")
    valid = [e["valid_nll"] for e in log.epochs if e.get("valid_nll") is not None]
    if stopped_early:
        print(f"translation.train: stopped early after epoch {done} (valid NLL best at epoch "
              f"{done - epochs_since_best(valid)}, patience {cfg.optim.patience})")
    writer.final(
        metrics={**scores, "valid_nll_best": min(valid) if valid else None,
                 "best_epoch": done - epochs_since_best(valid) if valid else None,
                 "epochs_trained": done, "stopped_early": stopped_early,
                 "checkpoint": checkpoint.name, "subset": cfg.eval.subset,
                 **({"averaged": [p.name for p in averaged]} if averaged else {}),
                 "beam": cfg.eval.beam, "lenpen": cfg.eval.lenpen, "test_sentences": len(hyps)},
        # the training kept in the checkpoint (every process that trained it) + this evaluation
        reliability=None, wall_s=pos.train_s + time.time() - t_eval,
    )
    return run_dir


@entry_point(rerun=RESUME_FLAG)
def main(argv: list[str] | None = None) -> int:
    import argparse
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m translation.train", description=description(__doc__))
    ap.add_argument("--config", required=True)
    ap.add_argument("--resume", action="store_true", help="continue the run in its existing folder "
                    "(the same as resume=true); without it an existing run folder is an error")
    ap.add_argument("--verbose", action="store_true",
                    help="also print fairseq's own log lines and library warnings (default: the "
                         "run's progress lines only)")
    ap.epilog = "key=value overrides anywhere on the line (e.g. epochs=3)"
    args = parse_with_overrides(ap, argv)
    overrides = list(args.overrides) + (["resume=true"] if args.resume else [])
    if not args.verbose:
        quiet_fairseq()
    command = "python -m translation.train " + " ".join(shlex.quote(a) for a in argv if a != "--verbose")

    cfg = load_config(TrainConfig, args.config, overrides)
    run_dir = train(cfg, command)
    if log_complete(run_dir):  # a run stopped before its last epoch has said how to resume
        print(next_steps(run_dir, cfg.table, cfg.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
