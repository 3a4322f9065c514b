import pytest

import bugcheck
from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.base import AddressSpace


class _Two(AddressSpace):
    """Two present pages at 0x1000 and 0x3000, a hole between."""

    def read_chunks(self, address, size):
        end = address + size
        while address < end:
            page = address & ~0xFFF
            n = min(end, page + 0x1000) - address
            if page in (0x1000, 0x3000):
                yield address, bytes([page >> 12]) * n, n
            else:
                yield address, None, n
            address += n


def test_version():
    assert bugcheck.__version__


def test_address_space_reads_and_holes():
    m = _Two()
    assert m.read(0x1FFE, 2) == b"\x01\x01"
    with pytest.raises(MemoryNotPresent) as e:
        m.read(0x1FFF, 2)
    assert e.value.address == 0x2000
    data, holes = m.read_padded(0x1FFF, 0x1002, fill=0xAA)
    assert data[0] == 1 and data[1] == 0xAA and data[-1] == 3
    assert holes == [(0x2000, 0x1000)]
