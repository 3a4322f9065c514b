"""Pure text renderers for WinDbg's layouts (registers, ``dt``), kept apart from commands so tests need no dump."""
