"""A stand-in for matplotlib, used by benchmarks/gpu_check.sh only where matplotlib is not installed
(a bare GPU machine): every plotting call does nothing, so the notebooks' [result] lines still print."""
__version__ = "0 (stand-in: no plots)"


class _Nothing:
    """Accepts any attribute, call, index or iteration; draws nothing."""

    def __init__(self, n: int = 1):
        self._n = n

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Nothing()

    def __call__(self, *args, **kwargs):
        return _Nothing()

    def __getitem__(self, key):
        return _Nothing()

    def __iter__(self):
        return iter([_Nothing() for _ in range(self._n)])

    def __len__(self):
        return self._n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def flat(self):
        return iter(self)


def use(*args, **kwargs):
    pass


rcParams: dict = {}
