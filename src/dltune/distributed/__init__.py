"""Studies past one machine: trials trained by Ray actors, fed from one study (ray_engine.py)."""
