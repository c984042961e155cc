package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and returns their paths.
type testPKI struct {
	dir                                                  string
	caFile, serverCert, serverKey, clientCert, clientKey string
	caPool                                               *x509.CertPool
	client                                               tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	p := &testPKI{dir: dir}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(ca)

	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ip bool) (string, string, tls.Certificate) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage},
			KeyUsage: x509.KeyUsageDigitalSignature}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		cf, kf := write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		return cf, kf, pair
	}
	p.serverCert, p.serverKey, _ = issue("server", 2, x509.ExtKeyUsageServerAuth, true)
	p.clientCert, p.clientKey, p.client = issue("client", 3, x509.ExtKeyUsageClientAuth, false)
	return p
}

func TestGRPCTLS(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		name       string
		server     TLSConfig
		clientCert bool
		ok         bool
	}{
		{"ok/tls", TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}, false, true},
		{"ok/mtls with a client certificate", TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile}, true, true},
		{"fail/mtls without a client certificate", TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loopback(Defaults())
			cfg.HTTP.Addr = ""
			cfg.GRPC.TLS = tt.server
			s, _ := startSidecar(t, cfg, io.Discard)
			clientTLS := &tls.Config{RootCAs: pki.caPool, MinVersion: tls.VersionTLS12}
			if tt.clientCert {
				clientTLS.Certificates = []tls.Certificate{pki.client}
			}
			conn, err := grpc.NewClient(s.grpc.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, checkRequest("echo", nil))
			if tt.ok {
				// A decision came back over TLS (the embedded policy's 401
				// for an anonymous call).
				if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
					t.Fatalf("%v %v", resp, err)
				}
				return
			}
			if err == nil {
				t.Fatal("a client without a certificate got an answer from an mTLS listener")
			}
		})
	}

	t.Run("fail/plaintext client on a TLS listener", func(t *testing.T) {
		cfg := loopback(Defaults())
		cfg.HTTP.Addr = ""
		cfg.GRPC.TLS = TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey}
		s, _ := startSidecar(t, cfg, io.Discard)
		client := dial(t, s.grpc.Addr().String())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if _, err := client.Check(ctx, checkRequest("echo", nil)); err == nil {
			t.Fatal("a plaintext client got an answer from a TLS listener")
		}
	})
}

func TestServerTLSErrors(t *testing.T) {
	pki := newPKI(t)
	bad := filepath.Join(pki.dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]TLSConfig{
		"fail/bad key pair":  {CertFile: bad, KeyFile: pki.serverKey},
		"fail/bad client CA": {CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: bad},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := serverTLS(c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
