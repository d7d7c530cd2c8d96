"""Mutation check: the test suite must fail when the engine is broken (docs/proofs.md §6).

    python benchmarks/mutations.py [all|NAME,NAME...] [pytest args...]

Copies the repository to /tmp/mutant-NAME, applies one edit, checks that the copy's package is
the one imported, runs the suite there and lists the failing tests (full logs in /tmp/mutation/).
"""
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = sys.executable
MUTANTS = {
    "baseline": [],
    "swap_bands": [("iaside/spectral.py",
        "def band_masks(h: int, w: int, n_bands: int = 8, partition: str = \"linf\") -> torch.Tensor:",
        "def band_masks(h: int, w: int, n_bands: int = 8, partition: str = \"linf\") -> torch.Tensor:\n"
        "    masks = _true_band_masks(h, w, n_bands, partition)\n"
        "    return masks[[1, 0, *range(2, n_bands)]] if n_bands >= 2 else masks  # MUTANT: rows 0 and 1 swapped\n\n\n"
        "def _true_band_masks(h: int, w: int, n_bands: int = 8, partition: str = \"linf\") -> torch.Tensor:")],
    "no_weight_norm": [("iaside/game.py",
        "return factorial(size) * factorial(n_players - size - 1) / factorial(n_players)",
        "return factorial(size) * factorial(n_players - size - 1)  # MUTANT: no / M!")],
    "reversed_bits": [("iaside/engine/loop.py",
        "self.bits = torch.from_numpy(self.bits_np).to(self.device, torch.float32)",
        "self.bits = torch.from_numpy(self.bits_np[:, ::-1].copy()).to(self.device, torch.float32)  # MUTANT")],
    "partner_is_self": [("iaside/fills.py",
        "            raise ValueError(\"PartnerFill needs the partner images\")\n        return partner",
        "            raise ValueError(\"PartnerFill needs the partner images\")\n        return x  # MUTANT")],
    "paper_empty_kept": [("iaside/coalitions.py", "            images[empty] = 0.0", "            pass  # MUTANT")],
    "top1_not_label": [("iaside/engine/loop.py", "y = torch.where(labels == PREDICTED, top1, labels)", "y = top1  # MUTANT")],
    "sid_no_shift": [("iaside/summary.py", "psi = phi - phi.min(axis=-1, keepdims=True)", "psi = np.abs(phi)  # MUTANT")],
}

def copy(dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    subprocess.run(f"cd {ROOT} && tar --exclude=./.venv --exclude=./.hypothesis --exclude=./.pytest_cache --exclude='__pycache__' -cf - . | tar -xf - -C {dst}", shell=True, check=True)

def main(names, test_args):
    os.makedirs("/tmp/mutation", exist_ok=True)
    for name in names:
        dst = f"/tmp/mutant-{name}"
        copy(dst)
        for path, old, new in MUTANTS[name]:
            p = os.path.join(dst, path)
            src = open(p).read()
            assert src.count(old) == 1, (name, path, src.count(old))
            open(p, "w").write(src.replace(old, new))
        env = dict(os.environ, PYTHONPATH=dst, HYPOTHESIS_STORAGE_DIRECTORY=f"{dst}/.hypothesis")
        where = subprocess.run([PY, "-c", "import iaside; print(iaside.__file__)"], cwd=dst, env=env, capture_output=True, text=True).stdout.strip()
        assert where.startswith(dst), where
        t0 = time.time()
        out = subprocess.run([PY, "-m", "pytest", "-q", "--tb=line", "-rf", "-p", "no:cacheprovider", *test_args], cwd=dst, env=env, capture_output=True, text=True)
        failed = sorted(set(re.findall(r"^FAILED (\S+)", out.stdout, re.M)))
        summary = out.stdout.strip().splitlines()[-1]
        open(f"/tmp/mutation/{name}.txt", "w").write(out.stdout + out.stderr)
        print(f"## {name}  (imported {where}; {time.time()-t0:.0f} s) {summary}", flush=True)
        for f in failed:
            print("   ", f, flush=True)

if __name__ == "__main__":
    names = sys.argv[1].split(",") if len(sys.argv) > 1 and sys.argv[1] != "all" else list(MUTANTS)
    main(names, sys.argv[2:])
