import pytest
import torch


@pytest.fixture
def one_thread():
    """Run the test with one torch thread (tiny models are fastest so, and xdist workers do not fight)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
