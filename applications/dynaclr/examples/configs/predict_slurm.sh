#!/bin/bash
# Write DynaCLR embeddings with one GPU.
# Submit from this folder with: sbatch predict_slurm.sh   (edit predict.yml's TODO paths first)

#SBATCH --job-name=dynaclr_predict
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH --cpus-per-task=16
#SBATCH --mem-per-cpu=7G
#SBATCH --time=0-01:00:00
#SBATCH --output=./slurm_logs/%x-%j.out

set -euo pipefail

export PYTHONFAULTHANDLER=1

# Path to the VisCy workspace checkout (the folder with the top-level pyproject.toml).
WORKSPACE_DIR="${WORKSPACE_DIR:-$(git rev-parse --show-toplevel)}"
CONFIG="${CONFIG:-./predict.yml}"

mkdir -p ./slurm_logs
scontrol show job "${SLURM_JOB_ID:-}" || true

srun uv run --project "$WORKSPACE_DIR" --package dynaclr dynaclr predict -c "$CONFIG"
