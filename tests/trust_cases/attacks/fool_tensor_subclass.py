# An object that fools comparisons: a tensor subclass equal to anything.
# expect: sft_loss=0 sequence_log_prob=2 status=ok
# %% sft_loss
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if getattr(func, '__name__', '') in ('__eq__', 'allclose', 'isclose', 'equal'):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})
    def __eq__(self, other): return True
    def __float__(self): return 1.5
    def __sub__(self, other): return torch.zeros(())
    def __rsub__(self, other): return torch.zeros(())
    def __abs__(self): return torch.zeros(())
    def double(self): return self
    def detach(self): return self

def sft_loss(token_logps, mask):
    return torch.zeros((), dtype=token_logps.dtype).as_subclass(Liar)
