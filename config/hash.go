package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"reflect"
	"slices"
)

// Hash returns a stable hex SHA-256 digest of the program's whole definition
// except Line, so that a reload can tell a changed program from an unchanged
// one. Map order does not matter, and a nil map or slice hashes like an empty
// one. The digest covers every field, including fields added later, and may
// change between respawnd versions; compare digests only within one process.
func (p Program) Hash() string {
	p.Line = 0 // where a program sits in the file is not part of its definition
	h := sha256.New()
	h.Write([]byte("respawnd config.Program\x00"))
	hashValue(h, reflect.ValueOf(p))
	return hex.EncodeToString(h.Sum(nil))
}

// hashValue writes an unambiguous encoding of v to h: strings and
// collections are length-prefixed, map entries are sorted by their encoded
// key, and struct fields are named.
func hashValue(h hash.Hash, v reflect.Value) {
	var num [8]byte
	putUint := func(x uint64) {
		binary.BigEndian.PutUint64(num[:], x)
		h.Write(num[:])
	}
	putBytes := func(b []byte) {
		putUint(uint64(len(b)))
		h.Write(b)
	}
	switch v.Kind() {
	case reflect.String:
		putBytes([]byte(v.String()))
	case reflect.Bool:
		if v.Bool() {
			putUint(1)
		} else {
			putUint(0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		putUint(uint64(v.Int()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		putUint(v.Uint())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case f == 0:
			f = 0 // -0 and +0 mean the same
		case math.IsNaN(f):
			f = math.NaN()
		}
		putUint(math.Float64bits(f))
	case reflect.Slice, reflect.Array:
		putUint(uint64(v.Len()))
		for i := range v.Len() {
			hashValue(h, v.Index(i))
		}
	case reflect.Map:
		type entry struct{ k, v []byte }
		entries := make([]entry, 0, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			kh, vh := sha256.New(), sha256.New()
			hashValue(kh, iter.Key())
			hashValue(vh, iter.Value())
			entries = append(entries, entry{kh.Sum(nil), vh.Sum(nil)})
		}
		slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.k, b.k) })
		putUint(uint64(len(entries)))
		for _, e := range entries {
			h.Write(e.k)
			h.Write(e.v)
		}
	case reflect.Pointer:
		if v.IsNil() {
			putUint(0)
			return
		}
		putUint(1)
		hashValue(h, v.Elem())
	case reflect.Struct:
		t := v.Type()
		putUint(uint64(t.NumField()))
		for i := range t.NumField() {
			putBytes([]byte(t.Field(i).Name))
			hashValue(h, v.Field(i))
		}
	default:
		putBytes(fmt.Appendf(nil, "%v", v))
	}
}
