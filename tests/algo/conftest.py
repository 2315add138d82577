"""The `rollout` fixture: a hand-built ragged rollout batch (see algo_toy)."""

import pytest
from algo_toy import Rollout, make_rollout


@pytest.fixture
def rollout() -> Rollout:
    return make_rollout()
