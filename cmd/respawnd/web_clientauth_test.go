package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/respawnd/respawnd/metrics"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a certificate signed by the CA for usage (server: for
// 127.0.0.1) and returns it with its key, PEM-encoded.
func (ca *testCA) issue(t *testing.T, serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("respawnd test %d", serial)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// With client_auth_type RequireAndVerifyClientCert in --web.config.file,
// only a client with a certificate from the configured CA gets the
// metrics: one without a certificate, or with one from another CA, is
// refused in the TLS handshake.
func TestWebConfigClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "respawnd test ca")
	serverCert, serverKey := ca.issue(t, 2, x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, 3, x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := newTestCA(t, "another ca").issue(t, 4, x509.ExtKeyUsageClientAuth)
	webConfig := writeFile(t, dir, "web.yml", fmt.Sprintf(`tls_server_config:
  cert_file: %s
  key_file: %s
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: %s
`, writeFile(t, dir, "server.pem", string(serverCert)), writeFile(t, dir, "server-key.pem", string(serverKey)), writeFile(t, dir, "ca.pem", string(ca.pem))))
	addr := freeAddr(t)
	wf := parseWebFlags(t, "--web.listen-address="+addr, "--web.config.file="+webConfig)
	s, err := newServers(wf, slog.New(slog.DiscardHandler), testObserver(), metrics.NewRecorder(), nil, true, false)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, s)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(certPEM, keyPEM []byte) *http.Client {
		cfg := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	get := func(c *http.Client) (int, string, error) {
		resp, err := c.Get("https://" + addr + "/metrics")
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	good := client(clientCert, clientKey)
	waitHTTP(t, good, "https://"+addr+"/-/healthy")
	if code, body, err := get(good); err != nil || code != http.StatusOK || !strings.Contains(body, "respawnd_build_info") {
		t.Errorf("client with a certificate of the CA: %d, %v\n%.300s", code, err, body)
	}
	for name, c := range map[string]*http.Client{
		"without a certificate":            client(nil, nil),
		"with a certificate of another CA": client(strangerCert, strangerKey),
	} {
		if code, _, err := get(c); err == nil {
			t.Errorf("client %s got %d, want the TLS handshake refused", name, code)
		}
	}
}
