# An object that fools comparisons: a class whose every comparison says yes.
# expect: sft_loss=3 sequence_log_prob=0 status=ok
# %% sequence_log_prob
class Always:
    def __lt__(self, other): return True
    def __le__(self, other): return True
    def __gt__(self, other): return False
    def __eq__(self, other): return True
    shape = (1,)

def sequence_log_prob(token_logps, mask):
    return Always()
