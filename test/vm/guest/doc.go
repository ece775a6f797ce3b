// Package guest holds tests that only make sense inside the test machine
// that test/vm/run boots, because they do what must never happen on a real
// host: run the whole machine out of memory. They are compiled only with the
// build tag vmguest, and each one also refuses to run unless it finds
// itself in that machine.
package guest
