# An object that fools comparisons: a float subclass close to anything.
# expect: sft_loss=0 sequence_log_prob=2 status=ok
# %% sft_loss
class Close(float):
    def __eq__(self, other): return True
    def __sub__(self, other): return Close(0.0)
    def __rsub__(self, other): return Close(0.0)
    def __abs__(self): return Close(0.0)
    def __gt__(self, other): return False
    def __le__(self, other): return True
    def __float__(self): return 1.5

def sft_loss(token_logps, mask):
    return Close(0.0)
