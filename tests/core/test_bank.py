import pytest
import torch
import torch.nn.functional as F

from core.bank import PredictionBank, TopKPredictionBank


def test_epoch1_onehot_then_stored_rows(tmp_path):
    n, k = 10, 4
    bank = PredictionBank(n, k)
    labels = torch.arange(n) % k
    idx = torch.tensor([3, 7, 1])
    t1 = bank.targets(idx, labels[idx], 0.5)
    assert torch.equal(t1, F.one_hot(labels[idx], k).float())  # unseen rows act as the label

    probs = torch.softmax(torch.randn(3, k), 1)
    bank.update(idx, probs)
    # epoch 2: the same indices, in another order, get the probabilities written in epoch 1
    idx2 = torch.tensor([1, 3, 7])
    order = torch.tensor([2, 0, 1])
    t2 = bank.targets(idx2, labels[idx2], 0.5)
    expected = 0.5 * F.one_hot(labels[idx2], k).float() + 0.5 * probs[order]
    torch.testing.assert_close(t2, expected)
    # an index never written is still one-hot
    assert torch.equal(bank.targets(torch.tensor([0]), labels[:1], 0.9), F.one_hot(labels[:1], k).float())


def test_state_dict_round_trip():
    bank = PredictionBank(6, 3)
    bank.update(torch.tensor([0, 4]), torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]))
    other = PredictionBank(6, 3)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.probs, bank.probs) and torch.equal(other.seen, bank.seen)
    labels = torch.tensor([1, 2, 0])
    idx = torch.tensor([0, 2, 4])
    assert torch.equal(other.targets(idx, labels, 0.3), bank.targets(idx, labels, 0.3))
    with pytest.raises(ValueError):
        PredictionBank(5, 3).load_state_dict(bank.state_dict())


def test_float16_and_memmap(tmp_path):
    probs = torch.softmax(torch.randn(4, 5), 1)
    for bank in (PredictionBank(8, 5, dtype=torch.float16),
                 PredictionBank(8, 5, path=tmp_path / "bank.npy")):
        bank.update(torch.tensor([0, 2, 4, 6]), probs)
        got = bank.teacher(torch.tensor([0, 2, 4, 6]), torch.zeros(4, dtype=torch.long))
        tol = 1e-3 if bank.dtype == torch.float16 else 0
        torch.testing.assert_close(got, probs, rtol=0, atol=tol)
    assert PredictionBank(8, 5, dtype=torch.float16).nbytes() < PredictionBank(8, 5).nbytes()


def test_bad_input():
    bank = PredictionBank(4, 3)
    with pytest.raises(IndexError):
        bank.targets(torch.tensor([4]), torch.tensor([0]), 0.1)
    with pytest.raises(ValueError):
        bank.update(torch.tensor([0]), torch.ones(1, 4))
    with pytest.raises(ValueError):
        PredictionBank(4, 3, dtype=torch.int64)


def test_state_dict_does_not_copy_a_cpu_bank():
    """A checkpoint of an ImageNet-size bank must not double its memory."""
    from core.bank import PredictionBank
    bank = PredictionBank(8, 3)
    state = bank.state_dict()
    assert state["probs"].data_ptr() == bank.probs.data_ptr()
    other = PredictionBank(8, 3)
    bank.update(torch.tensor([1]), torch.tensor([[0.2, 0.3, 0.5]]))
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.probs, bank.probs) and other.probs.data_ptr() != bank.probs.data_ptr()


def test_topk_bank_keeps_k_largest_and_spreads_the_rest():
    from core.bank import TopKPredictionBank
    bank = TopKPredictionBank(4, 5, k=2)
    p = torch.tensor([[0.5, 0.2, 0.1, 0.15, 0.05]])
    bank.update(torch.tensor([2]), p)
    t = bank.teacher(torch.tensor([2, 0]), torch.tensor([0, 3]))
    # row 2: 0.5 and 0.2 kept; the rest 0.3 spread over the other 3 classes
    torch.testing.assert_close(t[0], torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1]))
    torch.testing.assert_close(t[1], torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0]))  # unseen: one-hot
    assert bank.nbytes() < PredictionBank(4, 5).nbytes()


def test_topk_bank_with_k_equal_K_minus_1_is_the_dense_bank():
    from core.bank import TopKPredictionBank
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(6, 5), 1)
    dense, sparse = PredictionBank(6, 5), TopKPredictionBank(6, 5, k=4)
    idx, y = torch.arange(6), torch.randint(0, 5, (6,))
    dense.update(idx, probs)
    sparse.update(idx, probs)
    torch.testing.assert_close(sparse.targets(idx, y, 0.7), dense.targets(idx, y, 0.7))
    other = TopKPredictionBank(6, 5, k=4)
    other.load_state_dict(sparse.state_dict())
    torch.testing.assert_close(other.teacher(idx, y), sparse.teacher(idx, y))
    with pytest.raises(ValueError, match="top-k must be in"):
        TopKPredictionBank(6, 5, k=5)


@pytest.mark.parametrize("make", [lambda: PredictionBank(5, 3), lambda: TopKPredictionBank(5, 3, 2)],
                         ids=["dense", "topk"])
def test_row_age_counts_epochs_since_the_last_write(make):
    bank = make()
    assert bank.row_age() == {"bank_row_age": None, "bank_never_written": 1.0}
    p = torch.full((2, 3), 1 / 3)
    bank.epoch = 1
    bank.update(torch.tensor([0, 1]), p)
    bank.epoch = 2
    bank.update(torch.tensor([1, 2]), p)
    # after epoch 2: row 0 was last written in epoch 1 (age 2), rows 1 and 2 in epoch 2 (age 1),
    # rows 3 and 4 never
    assert bank.row_age() == {"bank_row_age": pytest.approx(4 / 3), "bank_never_written": pytest.approx(2 / 5)}
    other = make()
    other.load_state_dict(bank.state_dict())
    other.epoch = 2
    assert other.row_age() == bank.row_age()
    old = {k: v for k, v in bank.state_dict().items() if k != "written"}  # a checkpoint from before
    other.load_state_dict(old)
    assert other.row_age()["bank_never_written"] == pytest.approx(2 / 5)


def test_memmap_file_blocks_are_reserved(tmp_path):
    """The bank file's blocks are allocated up front (epoch 1's scattered writes into a sparse
    file ran 3.6x slower than into memory, tools/bench_bank.py); the rows still read as unseen."""
    import os
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        with open(probe, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, 1 << 20)
    except (AttributeError, OSError):
        pytest.skip("no posix_fallocate on this filesystem")
    bank = PredictionBank(2000, 100, path=tmp_path / "bank.npy")
    st = os.stat(tmp_path / "bank.npy")
    assert st.st_size >= 2000 * 100 * 4 and st.st_blocks * 512 >= st.st_size
    y = torch.tensor([3, 7])
    assert torch.equal(bank.teacher(torch.tensor([0, 1999]), y), torch.nn.functional.one_hot(y, 100).float())


def test_checksum_in_chunks_equals_the_whole_bank_formula():
    from core.bank import bank_checksum
    bank = PredictionBank(1000, 7)
    bank.update(torch.arange(0, 1000, 3), torch.softmax(torch.randn(334, 7), 1))
    w = torch.arange(1, 8, dtype=torch.float64)
    whole = (bank.probs.double() @ w * torch.arange(1, 1001, dtype=torch.float64)).sum()
    for chunk in (1, 64, 1000, 4096):
        torch.testing.assert_close(bank_checksum(bank, chunk), whole, rtol=1e-12, atol=0)


def test_teacher_rows_unseen_are_exact_one_hot_and_seen_are_the_stored_rows():
    bank = PredictionBank(6, 4)
    p = torch.softmax(torch.randn(2, 4), 1)
    bank.update(torch.tensor([1, 4]), p)
    labels = torch.tensor([0, 3, 2, 1])
    t = bank.teacher(torch.tensor([1, 2, 4, 5]), labels)
    assert torch.equal(t[0], p[0]) and torch.equal(t[2], p[1])
    assert torch.equal(t[1], torch.tensor([0., 0., 0., 1.])) and torch.equal(t[3], torch.tensor([0., 1., 0., 0.]))
    assert torch.equal(bank.probs[2], torch.zeros(4))  # reading never writes the bank
