"""ibtools: information-plane analysis of small neural networks.

Estimators of I(X;T) and I(T;Y) (binning, entropy-based adaptive binning, KDE bounds, adaptive
KDE), the 12-bit task of Shwartz-Ziv & Tishby regenerated offline, and an engine that trains many
networks at once while recording their information planes.
"""

__version__ = "0.1.0"
