"""Studies past one machine: trials trained by Ray actors, fed from one study (ray_engine.py).
An engine like the others (dltune.engine's protocol): it imports engines, never the study."""
