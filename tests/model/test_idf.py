"""The IDF control's table (simcse_gs.model.policy_idf_drop.idf_table): frequent tokens rank low."""

from __future__ import annotations

import math

import pytest

from simcse_gs.model.policy_idf_drop import idf_table


def test_idf_table_ranks_frequent_tokens_low():
    table = idf_table([[1, 2, 3], [1, 2], [1, 4], [1]], vocab_size=6)
    assert table[1] < table[2] < table[3] == table[4] < table[5]  # 5 never seen: the rarest
    assert table[1] == pytest.approx(math.log(5 / 5) + 1) and table[3] == pytest.approx(math.log(5 / 2) + 1)
